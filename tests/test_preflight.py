"""The pre-flight check and the one-line errors for everyday mistakes: each names its culprit, exits 2
for a usage or config error, and leaves no run folder behind."""

import json
from pathlib import Path

import pytest
import yaml
from fake_openai import FakeOpenAIServer, chat_reply, completion_reply
from typer.testing import CliRunner

from writing_rl.cli import app, main
from writing_rl.server import free_port

pytest.importorskip("trl")

runner = CliRunner()
SAMPLE = {"id": 1, "prompt": "Write a poem.", "references": ["weak", "strong"], "length": 40}


def samples_file(tmp_path: Path, n: int = 2, **fields) -> Path:
    path = tmp_path / "s.jsonl"
    path.write_text(
        "".join(json.dumps({**SAMPLE, "id": i, **fields}) + "\n" for i in range(1, n + 1)), encoding="utf-8"
    )
    return path


def model_folder(tmp_path: Path) -> Path:
    """Enough of a transformers folder for the check (it reads config.json, loads nothing)."""
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


def train_yaml(tmp_path: Path, **over) -> Path:
    cfg = {
        "model": str(model_folder(tmp_path)),
        "dataset": str(samples_file(tmp_path)),
        "output_dir": str(tmp_path / "run"),
        "judge": {"backend": "rule", "rule": {"name": "length_fit"}},
        "grpo": {"max_steps": 1, "report_to": ["none"]},
    }
    for key, value in over.items():
        section, _, name = key.partition("__")
        if name:
            cfg.setdefault(section, {})[name] = value
        else:
            cfg[key] = value
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def test_check_passes_a_good_config_and_says_what_it_checked(tmp_path):
    result = runner.invoke(app, ["check", str(train_yaml(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "train config" in result.output and "2 samples" in result.output and "trl.GRPOConfig" in result.output
    assert "all checks passed" in result.output


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        (
            {"grpo__learning_rat": 1e-5},
            "grpo.learning_rat: not a trl.GRPOConfig setting; did you mean 'learning_rate'?",
        ),
        ({"modle": "x"}, "modle: unknown key; did you mean 'model'?"),
        ({"grpo__max_steps": "ten"}, "grpo.max_steps: Input should be a valid integer"),
        (
            {"judge__endpoint": {"base_ur": "http://x/v1"}},
            "judge.endpoint.base_ur: unknown key; did you mean 'base_url'?",
        ),
        ({"dataset": "nothere/s.jsonl"}, "dataset: nothere/s.jsonl: no such file"),
        ({"model": "/no/such/model"}, "model: /no/such/model: no such folder"),
        ({"grpo__loss_type": "ppo"}, "grpo.loss_type: Input should be"),
        ({"grpo__per_device_train_batch_size": 16}, "2 samples, fewer than the 4 prompts one generation round takes"),
    ],
)
def test_train_config_mistakes_are_one_line_exit_2_and_create_nothing(tmp_path, over, expected):
    cfg = train_yaml(tmp_path, **over)
    for command in (["check", str(cfg)], ["train", str(cfg)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert expected in one_error_line(result)
    assert not (tmp_path / "run").exists()


def test_a_model_folder_without_config_json_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["check", str(train_yaml(tmp_path, model=str(tmp_path / "empty")))])
    assert result.exit_code == 2
    assert f"model: {tmp_path / 'empty'} has no config.json" in one_error_line(result)


def test_a_dead_judge_stops_train_before_anything_exists_naming_the_url(tmp_path):
    url = dead_url()
    cfg = train_yaml(tmp_path, judge={"endpoint": {"base_url": url, "model": "m"}})
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"judge.endpoint: cannot reach {url}" in line and "ConnectError" in line and "serve-judge" in line
    assert "Connection refused" in line  # the cause, not pyreqwest's tuple of details
    assert not (tmp_path / "run").exists()


def test_a_missing_api_key_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("WRL_TEST_KEY", raising=False)
    cfg = train_yaml(tmp_path, judge={"endpoint": {"base_url": dead_url(), "api_key_env": "WRL_TEST_KEY"}})
    result = runner.invoke(app, ["check", str(cfg)])
    assert result.exit_code == 2
    assert "judge.endpoint.api_key_env: environment variable WRL_TEST_KEY is not set" in one_error_line(result)


def _served(body_model: str, reply: tuple) -> tuple:
    return reply if body_model == "fake" else ("status", 404, f"The model `{body_model}` does not exist.")


def test_an_endpoint_serving_another_model_is_named_with_what_it_serves(tmp_path):
    with FakeOpenAIServer(lambda path, body, n: _served(body["model"], chat_reply("OK"))) as server:
        cfg = train_yaml(tmp_path, judge={"endpoint": {"base_url": server.base_url, "model": "qwen-72b"}})
        result = runner.invoke(app, ["check", str(cfg)])
        assert result.exit_code == 2
        line = one_error_line(result)
        assert "HTTP 404" in line and "it serves fake, not 'qwen-72b'" in line and server.base_url in line
        good = train_yaml(tmp_path, judge={"endpoint": {"base_url": server.base_url, "model": "fake"}})
        result = runner.invoke(app, ["check", str(good)])
        assert result.exit_code == 0, result.output
        assert f"{server.base_url} answers model 'fake'" in result.output


def test_the_check_reads_the_reply_as_the_run_reads_it(tmp_path):
    """The probe asks through the run's client, once: a 200 whose reply the run cannot read (the text a number)
    fails the check, as every judge call of the run would fail."""

    def number_for_text(path, body, n):
        return ("json", {"choices": [{"message": {"role": "assistant", "content": 7}}]})

    with FakeOpenAIServer(number_for_text) as server:
        cfg = train_yaml(tmp_path, judge={"endpoint": {"base_url": server.base_url, "model": "fake", "max_retries": 3}})
        result = runner.invoke(app, ["check", str(cfg)])
        assert result.exit_code == 2
        line = one_error_line(result)
        assert f"{server.base_url}/chat/completions answered a reply the run cannot read" in line
        assert "choices.0.message.content" in line and server.calls() == 1


@pytest.mark.parametrize("soft_via", ["chat", "completions"])
def test_a_soft_judge_without_logprobs_is_caught_before_training(tmp_path, soft_via):
    def no_logprobs(path, body, n):
        return ("json", {"choices": [{"text": "A", "message": {"role": "assistant", "content": "A"}}]})

    def with_logprobs(path, body, n):
        if path.endswith("/completions") and "prompt" in body:
            return completion_reply("A", {"A": -0.1, "B": -2.0})
        return chat_reply("A", [("A", {"A": -0.1, "B": -2.0})])

    judge = {"mode": "soft", "soft_via": soft_via}
    with FakeOpenAIServer(no_logprobs) as server:
        cfg = train_yaml(tmp_path, judge={**judge, "endpoint": {"base_url": server.base_url, "model": "fake"}})
        result = runner.invoke(app, ["train", str(cfg)])
        assert result.exit_code == 2
        assert "returned no log-probabilities, which soft mode reads" in one_error_line(result)
        assert not (tmp_path / "run").exists()
    with FakeOpenAIServer(with_logprobs) as server:
        cfg = train_yaml(tmp_path, judge={**judge, "endpoint": {"base_url": server.base_url, "model": "fake"}})
        result = runner.invoke(app, ["check", str(cfg)])
        assert result.exit_code == 0, result.output
        assert "with log-probabilities" in result.output
        assert server.requests[-1][0].endswith("/v1/completions" if soft_via == "completions" else "/chat/completions")


def test_a_left_over_run_without_checkpoint_gives_the_exact_command_to_start_over(tmp_path):
    cfg = train_yaml(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("{}", encoding="utf-8")
    (run / "curriculum.sqlite").write_bytes(b"")
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"{run} holds a run that never reached a checkpoint" in line
    assert f"`writing-rl train {cfg} --output-dir {run} --overwrite`" in line
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "never reached a checkpoint" in line
    assert f"`writing-rl train {run / 'config.yaml'} --output-dir {run} --overwrite`" in line


def test_a_finished_run_offers_a_fresh_folder(tmp_path):
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text("{}", encoding="utf-8")
    result = runner.invoke(app, ["train", str(train_yaml(tmp_path))])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"{run} holds a finished run" in line and f"--output-dir {run}-" in line and "--overwrite" in line


def test_overwrite_refuses_a_folder_that_holds_no_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine", encoding="utf-8")
    result = runner.invoke(app, ["train", str(train_yaml(tmp_path)), "--overwrite"])
    assert result.exit_code == 2
    assert (
        "holds files but no run (--overwrite deletes only run folders): choose a new or empty output_dir"
        in one_error_line(result)
    )
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def wb_file(tmp_path: Path) -> Path:
    path = tmp_path / "wb-ok.jsonl"
    row = {"index": 1, "query": "Write.", "checklist": [{"name": "c", "criteria_description": "d"}]}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


def test_eval_mistakes_name_the_task_file_and_the_opponents_folder(tmp_path):
    base = {
        "model": {"name": "m", "transformers_model": str(model_folder(tmp_path))},
        "output_dir": str(tmp_path / "ev"),
        "judge": {"backend": "rule", "rule": {"name": "length_fit"}},
    }
    cases = [
        (
            {"writingbench": {"path": str(tmp_path / "wb.jsonl")}},
            f"tasks.writingbench.path: {tmp_path / 'wb.jsonl'}: no such file",
        ),
        (
            {"arena": {"samples": str(samples_file(tmp_path)), "opponents": {"base": str(tmp_path / "evals/base")}}},
            f"tasks.arena.opponents.base: {tmp_path / 'evals/base'}: no such folder",
        ),
        ({}, "tasks: no task given"),
        (
            {"writingbench": {"path": str(wb_file(tmp_path)), "requirement_dir": str(tmp_path / "requirement")}},
            f"tasks.writingbench: writingbench.requirement_dir: {tmp_path / 'requirement'}: no such folder",
        ),
    ]
    for tasks, expected in cases:
        path = tmp_path / "eval.yaml"
        path.write_text(yaml.safe_dump({**base, "tasks": tasks}), encoding="utf-8")
        result = runner.invoke(app, ["eval", str(path)])
        assert result.exit_code == 2, result.output
        assert expected in one_error_line(result)
        assert not (tmp_path / "ev").exists()
    path.write_text(
        yaml.safe_dump({**base, "tasks": {"arena": {"samples": str(samples_file(tmp_path))}}}), encoding="utf-8"
    )
    result = runner.invoke(app, ["eval", str(path), "--model-path", str(tmp_path / "nothere")])
    assert f"--model-path: {tmp_path / 'nothere'}: no such folder" in one_error_line(result)


def test_select_and_build_refs_name_missing_inputs_and_dead_generators(tmp_path):
    select = tmp_path / "select.yaml"
    select.write_text(
        yaml.safe_dump({"pool": str(tmp_path / "refs.jsonl"), "policy": {"name": "p", "endpoint": {}}, "top_k": 1}),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["select", str(select)])
    assert result.exit_code == 2
    assert f"pool: {tmp_path / 'refs.jsonl'}: no such file" in one_error_line(result)
    url = dead_url()
    build = tmp_path / "build.yaml"
    build.write_text(
        yaml.safe_dump(
            {
                "prompts": str(samples_file(tmp_path)),
                "generators": [{"name": "g", "endpoint": {"base_url": url}}],
                "work_dir": str(tmp_path / "work"),
                "output": str(tmp_path / "work" / "refs.jsonl"),
            }
        ),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["build-refs", str(build)])
    assert result.exit_code == 2
    assert f"generators.0 (g).endpoint: cannot reach {url}" in one_error_line(result)
    assert not (tmp_path / "work").exists()


def test_select_with_a_rule_critic_probes_no_critic(tmp_path):
    pool = tmp_path / "refs.jsonl"
    pool.write_text(json.dumps({"id": 0, "prompt": "p", "length": 5, "candidates": {"given-0": "a b"}}) + "\n")
    url = dead_url()
    with FakeOpenAIServer(lambda path, body, n: chat_reply("OK")) as server:
        base = {
            "pool": str(pool),
            "policy": {"name": "p", "endpoint": {"base_url": server.base_url, "model": "policy"}},
            "critic": {"endpoint": {"base_url": url}},
            "top_k": 1,
        }
        cfg = tmp_path / "select.yaml"
        cfg.write_text(yaml.safe_dump(base), encoding="utf-8")
        result = runner.invoke(app, ["check", str(cfg)])
        assert result.exit_code == 2 and f"critic.endpoint: cannot reach {url}" in one_error_line(result)
        cfg.write_text(yaml.safe_dump({**base, "rule_critic": "length_fit"}), encoding="utf-8")
        result = runner.invoke(app, ["check", str(cfg)])
        assert result.exit_code == 0, result.output
        assert "rule_critic: length_fit" in result.output
        work = tmp_path / "work"
        base.update(work_dir=str(work), output=str(work / "kept.jsonl"), report_dir=str(work), min_references=1)
        cfg.write_text(yaml.safe_dump({**base, "rule_critic": "length_fit"}), encoding="utf-8")
        result = runner.invoke(app, ["select", str(cfg)])
        assert result.exit_code == 0, result.output
        assert "kept 1 of 1 prompts (margin)" in result.output and "rule critic length_fit" in result.output


def test_a_local_endpoint_without_the_local_judge_is_named(tmp_path):
    cfg = train_yaml(tmp_path, judge={"endpoint": {"base_url": "local"}})
    result = runner.invoke(app, ["check", str(cfg)])
    assert result.exit_code == 2
    assert "judge.endpoint.base_url is 'local' but local_judge.enabled is false" in one_error_line(result)


def test_validate_on_a_config_points_at_check(tmp_path):
    cfg = train_yaml(tmp_path)
    result = runner.invoke(app, ["validate", str(cfg)])
    assert result.exit_code == 2
    assert one_error_line(result) == f"{cfg} is a config, not a sample file: check it with `writing-rl check {cfg}`"


def test_judge_pair_names_a_missing_answer_file(tmp_path):
    result = runner.invoke(app, ["judge-pair", "--question", "q", "--a", "x", "--b", f"@{tmp_path / 'nofile.txt'}"])
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"{tmp_path / 'nofile.txt'}: cannot read it")


def test_judge_pair_against_a_dead_server_names_the_url_and_the_way_out(tmp_path):
    url = dead_url()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"judge": {"endpoint": {"base_url": url, "max_retries": 0}}}), encoding="utf-8")
    result = runner.invoke(app, ["judge-pair", "--question", "q", "--a", "x", "--b", "y", "--config", str(cfg)])
    assert result.exit_code == 3
    last = result.output.strip().splitlines()[-1]
    assert f"judge endpoint {url} failed" in last and "serve-judge" in last and "--local" in last


def test_judge_pair_against_a_dead_server_leaves_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    judge = {"endpoint": {"base_url": dead_url(), "max_retries": 0}, "cache_path": "runs/judge_cache.sqlite"}
    Path("c.yaml").write_text(yaml.safe_dump({"judge": judge}), encoding="utf-8")
    result = runner.invoke(app, ["judge-pair", "--question", "q", "--a", "x", "--b", "y", "--config", "c.yaml"])
    assert result.exit_code == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # no runs/judge_cache.sqlite


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path, monkeypatch, capsys):
    import writing_rl.rollouts as rollouts

    def boom(*args, **kwargs):
        raise RuntimeError("disk\nfull")

    monkeypatch.setattr(rollouts, "read_rollouts", boom)
    with pytest.raises(SystemExit) as info:
        main(["rollouts", str(tmp_path)])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: RuntimeError: disk full (run with --debug for the traceback)"]
    with pytest.raises(RuntimeError, match="disk"):
        main(["--debug", "rollouts", str(tmp_path)])


def test_a_judge_concurrency_below_the_process_count_is_caught_before_training(tmp_path):
    """`max_concurrency` is the judge's total over all training processes: each needs at least one."""
    judge = {"endpoint": {"base_url": dead_url(), "max_concurrency": 3}}
    grpo = {"max_steps": 1, "report_to": ["none"], "num_generations": 2, "per_device_train_batch_size": 2}
    cfg = train_yaml(tmp_path, judge=judge, grpo=grpo)
    samples_file(tmp_path, 4)  # 4 processes take 4 prompts a generation round
    result = runner.invoke(app, ["check", str(cfg), "--skip-endpoints", "--num-processes", "4"])
    assert result.exit_code == 2, result.output
    assert one_error_line(result) == (
        "judge.endpoint.max_concurrency: 3 is the endpoint's total across all processes, fewer than the 4 "
        "training processes: set it to at least 4"
    )
    result = runner.invoke(app, ["check", str(cfg), "--skip-endpoints", "--num-processes", "2"])
    assert result.exit_code == 0, result.output
    assert "judge.endpoint.max_concurrency: 3 in all over 2 process(es), 2 or 1 each" in result.output
    assert not (tmp_path / "run").exists()
