"""`writing-rl check` on training configs: mistakes that used to pass the check and fail later (on the GPU
node, after the model loaded, after the run folder existed) are caught before anything is created, one line
each naming the key and the fix, and all the problems of a config are reported at once."""

import inspect
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from test_preflight import dead_url, one_error_line, runner, samples_file, train_yaml

from writing_rl.cli import app

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]
# configs/gpu_7b.yaml's batch: 8 completions per device x 4 accumulation steps, groups of 8
GPU_BATCH = {
    "num_generations": 8,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 4,
    "max_steps": 1,
    "report_to": ["none"],
}


def error_lines(result) -> list[str]:  # type: ignore[no-untyped-def]
    assert "Traceback" not in result.output
    return result.output.strip().splitlines()


def write_samples(tmp_path: Path, rows: list[dict], name: str = "s.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def plain_samples(n: int, **fields) -> list[dict]:
    return [{"id": i, "prompt": f"Write poem {i}.", "references": ["weak", "strong"], **fields} for i in range(n)]


def refused_before_anything_exists(tmp_path: Path, cfg: Path, expected: str, *extra: str) -> None:
    for command in (["check", str(cfg), *extra], ["train", str(cfg)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert expected in one_error_line(result)
    assert not (tmp_path / "run").exists()


# -- 1. one generation round takes per_device x processes x accumulation / num_generations prompts -----------
def test_the_dataset_must_fill_one_generation_round_of_every_process(tmp_path):
    cfg = train_yaml(tmp_path, grpo=GPU_BATCH)
    samples_file(tmp_path, 1)
    expected = (
        "dataset: {}: 1 samples, fewer than the 28 prompts one generation round takes (grpo.per_device_train_batch_size"
        " 8 x 7 process(es) x grpo.gradient_accumulation_steps 4 / grpo.num_generations 8): TRL would stop at step 0"
    ).format(tmp_path / "s.jsonl")
    result = runner.invoke(app, ["check", str(cfg), "--num-processes", "7"])
    assert result.exit_code == 2
    assert one_error_line(result).startswith(expected)
    for name in ("deepspeed_zero3.yaml", "fsdp.yaml"):  # both launch 7 processes
        accelerate = ROOT / "configs" / "accelerate" / name
        result = runner.invoke(app, ["check", str(cfg), "--accelerate-config", str(accelerate)])
        assert result.exit_code == 2
        assert one_error_line(result).startswith(expected)
    samples_file(tmp_path, 4)  # one process: 8 x 1 x 4 / 8 = 4 prompts
    one = runner.invoke(app, ["check", str(cfg), "--accelerate-config", str(accelerate), "--num-processes", "1"])
    assert one.exit_code == 0, one.output  # --num-processes wins over the file, as with `accelerate launch`
    assert "4 samples, 4 prompts a generation round (grpo.per_device_train_batch_size 8 x 1 process(es)" in one.output
    samples_file(tmp_path, 28)
    seven = runner.invoke(app, ["check", str(cfg), "--num-processes", "7"])
    assert seven.exit_code == 0, seven.output
    assert "28 samples, 28 prompts a generation round" in seven.output


def test_train_under_a_launch_sizes_the_round_by_its_world(tmp_path, monkeypatch):
    cfg = train_yaml(tmp_path, grpo=GPU_BATCH)
    samples_file(tmp_path, 8)
    import writing_rl.preflight as preflight

    monkeypatch.setattr(preflight, "launched_processes", lambda: 7)  # $WORLD_SIZE under `accelerate launch`
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 2
    assert "8 samples, fewer than the 28 prompts one generation round takes" in one_error_line(result)
    assert not (tmp_path / "run").exists()


def test_an_explicit_generation_batch_is_checked_for_the_process_count(tmp_path):
    grpo = {"num_generations": 4, "per_device_train_batch_size": 4, "generation_batch_size": 12, "report_to": ["none"]}
    cfg = train_yaml(tmp_path, grpo=grpo)
    samples_file(tmp_path, 3)
    assert runner.invoke(app, ["check", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["check", str(cfg), "--num-processes", "2"])  # 12 is no multiple of 4 x 2
    assert one_error_line(result) == (
        "grpo settings rejected by trl.GRPOConfig: generation_batch_size (12) must be divisible by the global batch "
        "size (8). (for 2 training processes)"
    )


def test_an_unreadable_accelerate_config_is_named(tmp_path):
    cfg = train_yaml(tmp_path)
    result = runner.invoke(app, ["check", str(cfg), "--accelerate-config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert one_error_line(result) == f"--accelerate-config: {tmp_path / 'nope.yaml'}: no such file"
    bad = tmp_path / "acc.yaml"
    bad.write_text(yaml.safe_dump({"distributed_type": "NO", "num_processes": -1}), encoding="utf-8")
    result = runner.invoke(app, ["check", str(cfg), "--accelerate-config", str(bad)])
    assert "num_processes is -1, not a process count" in one_error_line(result)


# -- 2. report_to against the integrations transformers has and this host has installed ---------------------
def test_a_misspelt_report_to_is_named_with_the_closest_integration(tmp_path):
    cfg = train_yaml(tmp_path, grpo={"max_steps": 1, "report_to": ["tensorbord"]})
    refused_before_anything_exists(
        tmp_path,
        cfg,
        "grpo.report_to: 'tensorbord' is not a transformers reporting integration; did you mean 'tensorboard'?",
    )
    cfg = train_yaml(tmp_path, grpo={"max_steps": 1, "report_to": ["none", "tensorboard"]})
    assert "grpo.report_to: 'none' goes alone" in one_error_line(runner.invoke(app, ["check", str(cfg)]))


@pytest.mark.parametrize("name", ["wandb", "trackio"])
def test_a_report_to_integration_that_is_not_installed_is_named_with_its_pip_line(tmp_path, name):
    from transformers.integrations import get_available_reporting_integrations

    if name in get_available_reporting_integrations():
        pytest.skip(f"{name} is installed here")
    cfg = train_yaml(tmp_path, grpo={"max_steps": 1, "report_to": [name]})
    refused_before_anything_exists(
        tmp_path, cfg, f"grpo.report_to: {name} is not installed here: `pip install {name}`, or drop it from report_to"
    )


def test_an_installed_report_to_integration_passes(tmp_path):
    from transformers.integrations import get_available_reporting_integrations

    if "tensorboard" not in get_available_reporting_integrations():
        pytest.skip("tensorboard is not installed here")
    result = runner.invoke(app, ["check", str(train_yaml(tmp_path, grpo={"report_to": ["tensorboard"]}))])
    assert result.exit_code == 0, result.output


# -- 3. values trl.GRPOConfig takes silently and TRL or the run would refuse later ------------------------------
@pytest.mark.parametrize(
    ("grpo", "expected"),
    [
        ({"bf16": "yes-please"}, "grpo.bf16: 'yes-please' is not a bool (Truthy value expected: got yes-please"),
        ({"bf16": "false"}, "grpo.bf16: 'false' is text, which trl.GRPOConfig would keep as text, not a bool: write "),
        (
            {"vllm_mode": "colocated"},
            "grpo.vllm_mode: 'colocated' is not one of server, colocate; did you mean 'colocate'?",
        ),
        ({"use_vllm": "yes-please"}, "grpo.use_vllm: 'yes-please' is not a bool"),
        ({"lr_scheduler_type": "cosin"}, "grpo.lr_scheduler_type: 'cosin' is not one of linear, cosine,"),
        ({"max_grad_norm": "1e-3"}, "grpo.max_grad_norm: '1e-3' is text, which trl.GRPOConfig would keep as text"),
    ],
)
def test_values_trl_would_refuse_later_are_refused_now(tmp_path, grpo, expected):
    cfg = train_yaml(tmp_path, grpo={"max_steps": 1, "report_to": ["none"], **grpo})
    refused_before_anything_exists(tmp_path, cfg, expected)


def test_good_values_of_the_same_keys_pass(tmp_path):
    grpo = {"bf16": False, "use_vllm": False, "vllm_mode": "colocate", "lr_scheduler_type": "cosine"}
    result = runner.invoke(app, ["check", str(train_yaml(tmp_path, grpo={**grpo, "max_grad_norm": 1.0e-3}))])
    assert result.exit_code == 0, result.output


def test_bf16_is_checked_on_a_cpu_host_and_only_fp16_is_left_to_a_gpu(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for half, note in (("bf16", ""), ("fp16", " (fp16 left to the GPU host: this one has no GPU)")):
        result = runner.invoke(app, ["check", str(train_yaml(tmp_path, grpo={half: True})), "--skip-endpoints"])
        assert result.exit_code == 0, result.output
        assert re.search(rf"grpo: \d+ settings accepted by trl\.GRPOConfig{re.escape(note)}\n", result.output)


def test_the_vllm_mode_choices_are_the_ones_trl_enforces_in_the_trainer():
    from trl.generation import vllm_generation

    from writing_rl.preflight import trl_declared_choices

    assert trl_declared_choices("vllm_mode") == ["server", "colocate"]
    assert "vllm_mode must be either 'server' or 'colocate'" in inspect.getsource(vllm_generation)


# -- 4. TRL's vLLM server for the policy ------------------------------------------------------------------------
TRL_VLLM_SERVER = {
    "/health": (200, {}),
    "/server_info": (200, {"vllm_config": {"weight_transfer_config": {"backend": "nccl"}}}),
    "/get_world_size": (200, {"world_size": 1}),
    "/v1/models": (200, {"object": "list", "data": [{"id": "Qwen/Qwen2.5-7B-Instruct"}]}),
}


@contextmanager
def vllm_server(routes: dict[str, tuple[int, dict]]) -> Iterator[str]:
    """A loopback server answering GETs as `routes` says (404 elsewhere), like `trl vllm-serve`; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            status, body = routes.get(self.path.split("?")[0], (404, {"detail": "Not Found"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def server_config(tmp_path: Path, **vllm) -> Path:
    return train_yaml(
        tmp_path, grpo={"max_steps": 1, "report_to": ["none"], "use_vllm": True, "vllm_mode": "server", **vllm}
    )


def test_the_vllm_server_is_probed_as_trl_will_call_it(tmp_path):
    with vllm_server(TRL_VLLM_SERVER) as url:
        result = runner.invoke(app, ["check", str(server_config(tmp_path, vllm_server_base_url=url))])
        assert result.exit_code == 0, result.output
        assert (
            f"ok  grpo.vllm_server_base_url: {url} answers as TRL's vLLM server (Qwen/Qwen2.5-7B-Instruct; "
            "1 worker(s))" in result.output
        )
        port = url.rsplit(":", 1)[1]
        by_host = server_config(tmp_path, vllm_server_host="127.0.0.1", vllm_server_port=int(port))
        result = runner.invoke(app, ["check", str(by_host)])
        assert result.exit_code == 0, result.output
        assert f"ok  grpo.vllm_server_host/vllm_server_port: {url} answers" in result.output


def test_a_dead_vllm_server_is_named_with_how_to_start_it(tmp_path):
    url = dead_url().removesuffix("/v1")
    cfg = server_config(tmp_path, vllm_server_base_url=url)
    refused_before_anything_exists(tmp_path, cfg, f"grpo.vllm_server_base_url: cannot reach TRL's vLLM server at {url}")
    line = one_error_line(runner.invoke(app, ["check", str(cfg)]))
    assert (
        "ConnectError" in line
        and f"`trl vllm-serve --model {tmp_path / 'model'} --port {url.rsplit(':', 1)[1]}`" in line
    )
    skipped = runner.invoke(app, ["check", str(cfg), "--skip-endpoints"])
    assert skipped.exit_code == 0, skipped.output
    assert f"grpo.vllm_server_base_url: {url} (TRL's vLLM server; not contacted: --skip-endpoints)" in skipped.output


def test_a_vllm_server_without_what_trl_needs_is_named(tmp_path):
    plain = {k: v for k, v in TRL_VLLM_SERVER.items() if k != "/server_info"}  # `vllm serve` without dev mode
    with vllm_server(plain) as url:
        result = runner.invoke(app, ["check", str(server_config(tmp_path, vllm_server_base_url=url))])
        assert "is a vLLM server without the development endpoints" in one_error_line(result)
    no_engine = {**TRL_VLLM_SERVER, "/server_info": (200, {"vllm_config": {"weight_transfer_config": None}})}
    with vllm_server(no_engine) as url:
        result = runner.invoke(app, ["check", str(server_config(tmp_path, vllm_server_base_url=url))])
        assert "has no weight-transfer engine" in one_error_line(result)
    with vllm_server({}) as url:  # something else answers there
        result = runner.invoke(app, ["check", str(server_config(tmp_path, vllm_server_base_url=url))])
        assert f"{url}/health answered HTTP 404" in one_error_line(result)


def test_no_vllm_server_is_probed_unless_the_run_uses_one(tmp_path):
    cfg = train_yaml(tmp_path, grpo={"use_vllm": True, "vllm_mode": "colocate", "vllm_server_base_url": dead_url()})
    result = runner.invoke(app, ["check", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "vLLM server" not in result.output


# -- 5. a rule judge whose samples lack what its rule measures -------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "needs"),
    [("length_fit", "the sample's target `length`"), ("keyword_coverage", "the sample's `keywords`")],
)
def test_a_rule_judge_that_can_score_no_sample_is_refused(tmp_path, rule, needs):
    cfg = train_yaml(tmp_path, judge={"backend": "rule", "rule": {"name": rule}})
    data = write_samples(tmp_path, plain_samples(2))
    refused_before_anything_exists(
        tmp_path,
        cfg,
        f"judge.rule.name: {rule} needs {needs}"
        if rule == "keyword_coverage"
        else f"judge.rule.name: length_fit needs {needs}, and none of the 2 samples of {data} has it: every reward "
        "would be unknown (not_applicable)",
    )


def test_a_rule_judge_that_can_score_some_samples_says_how_many(tmp_path):
    cfg = train_yaml(tmp_path, judge={"backend": "rule", "rule": {"name": "length_fit"}})
    write_samples(tmp_path, [*plain_samples(1), {**plain_samples(2)[1], "length": 30}])
    result = runner.invoke(app, ["check", str(cfg)])
    assert result.exit_code == 0, result.output
    assert (
        "judge.rule.name: length_fit scores 1 of 2 samples; 1 lack what it needs (length_fit needs the sample's "
        "target `length`): their rewards are unknown" in result.output
    )


def ablation_yaml(tmp_path: Path, rule: str, heldout: list[dict]) -> Path:
    cfg = yaml.safe_load(train_yaml(tmp_path, judge={"backend": "rule", "rule": {"name": rule}}).read_text())
    cfg["ablation"] = {"heldout": str(write_samples(tmp_path, heldout, "heldout.jsonl"))}
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_the_ablation_checks_its_training_and_held_out_samples_against_its_rules(tmp_path):
    heldout = [
        {**s, "id": f"h{s['id']}", "prompt": f"Held out {s['id']}.", "keywords": ["sea"]} for s in plain_samples(2)
    ]
    path = ablation_yaml(tmp_path, "keyword_coverage", heldout)
    write_samples(tmp_path, plain_samples(2))  # training samples without keywords
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert error_lines(result)[0].startswith("judge.rule.name: keyword_coverage needs the sample's `keywords`")
    write_samples(tmp_path, plain_samples(2, keywords=["rain"]))
    result = runner.invoke(app, ["check", str(path)])  # the metrics: keyword_coverage, then length_fit by default
    assert result.exit_code == 2
    assert one_error_line(result) == (
        f"ablation.metrics: length_fit needs the sample's target `length`, and 2 of the 2 held-out samples of "
        f"{tmp_path / 'heldout.jsonl'} lack it: add it to them or drop length_fit from ablation.metrics"
    )
    ablation_yaml(tmp_path, "keyword_coverage", [{**s, "length": 20} for s in heldout])
    write_samples(tmp_path, plain_samples(2, keywords=["rain"]))
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "ablation.heldout:" in result.output and "scored by keyword_coverage, length_fit" in result.output


def test_every_arm_is_checked_as_its_own_training_and_a_problem_names_its_arm(tmp_path):
    heldout = [{**s, "id": f"h{s['id']}", "prompt": f"Held out {s['id']}.", "length": 20} for s in plain_samples(2)]
    path = ablation_yaml(tmp_path, "length_fit", heldout)
    write_samples(tmp_path, plain_samples(2, length=30))
    unmeasured = write_samples(tmp_path, plain_samples(2), "unmeasured.jsonl")  # no `length`: length_fit cannot judge
    cfg = yaml.safe_load(path.read_text())
    cfg["ablation"]["arms"] = {
        "dynamic": {},
        "pointwise": {"reward": {"kind": "pointwise"}, "curriculum": {"schedule": "none"}},
        "unmeasured": {"dataset": str(unmeasured)},
        "gone": {"dataset": str(tmp_path / "gone.jsonl")},
    }
    cfg["ablation"]["metrics"] = ["length_fit", "uncounted_words", "base_nll"]  # measures read any answer
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [  # the arms in the file's order (safe_dump sorts them)
        f"arm 'gone': dataset: {tmp_path / 'gone.jsonl'}: no such file (give a samples .jsonl, a dataset folder or "
        "'demo')",
        f"arm 'unmeasured': judge.rule.name: length_fit needs the sample's target `length`, and none of the 2 "
        f"samples of {unmeasured} has it: every reward would be unknown (not_applicable); add it to the samples or "
        "choose a rule they fit (low_repetition)",
    ]
    cfg["dataset"] = str(unmeasured)  # the base's own problem: said once, not again for each arm that shares it
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    shared = runner.invoke(app, ["check", str(path)])
    assert shared.exit_code == 2 and [line.split(":")[0] for line in error_lines(shared)] == [
        "judge.rule.name",
        "arm 'gone'",
    ]
    cfg["dataset"] = str(tmp_path / "s.jsonl")
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    started = runner.invoke(app, ["ablation", str(path)])  # the command runs the same check before training
    assert started.exit_code == 2 and error_lines(started)[-1].startswith("arm 'unmeasured': judge.rule.name")
    assert not (tmp_path / "run").exists()
    del cfg["ablation"]["arms"]["unmeasured"], cfg["ablation"]["arms"]["gone"]
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "ablation.arms: dynamic, pointwise, each checked as its own training" in result.output
    assert "arm pointwise: reward.kind: pointwise: each answer is scored alone" in result.output  # what it changes
    assert "arm dynamic:" not in result.output  # the base's lines are not repeated for an arm that changes nothing
    assert "scored by length_fit, uncounted_words, base_nll" in result.output


def test_the_shipped_ablation_config_passes_its_check():
    result = runner.invoke(app, ["check", str(ROOT / "configs/ablation/promotion_rules.yaml"), "--skip-endpoints"])
    assert result.exit_code == 0, result.output
    assert "arm pointwise: reward.kind: pointwise" in result.output


# -- 6. --max-steps below 1 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", ["0", "-5"])
def test_max_steps_below_one_is_refused_in_one_line(tmp_path, steps):
    expected = f"--max-steps {steps}: Input should be greater than or equal to 1 (it replaces grpo.max_steps)"
    result = runner.invoke(app, ["train", str(train_yaml(tmp_path)), "--max-steps", steps])
    assert result.exit_code == 2
    assert one_error_line(result) == expected
    assert not (tmp_path / "run").exists()
    ablation = ablation_yaml(tmp_path, "length_fit", [{**plain_samples(1)[0], "id": "h", "length": 20}])
    result = runner.invoke(app, ["ablation", str(ablation), "--max-steps", steps])
    assert result.exit_code == 2
    assert one_error_line(result) == expected
    assert not (tmp_path / "run").exists()


# -- 7. every problem at once ------------------------------------------------------------------------------------
def test_every_problem_of_a_train_config_is_reported_at_once(tmp_path):
    grpo = {
        **GPU_BATCH,
        "learning_rat": 1e-5,
        "bf16": "yes-please",
        "vllm_mode": "colocated",
        "report_to": ["tensorbord"],
    }
    judge = {"endpoint": {"base_url": dead_url(), "max_concurrency": 1}}
    cfg = train_yaml(tmp_path, grpo=grpo, judge=judge, model=str(tmp_path / "nomodel"))
    for command in (["check", str(cfg), "--num-processes", "2"], ["train", str(cfg)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        lines = error_lines(result)
        expected = ["grpo.learning_rat:", "grpo.bf16:", "grpo.vllm_mode:", "grpo.report_to:", "dataset:", "model:"]
        if command[0] == "check":  # two processes: the judge's max_concurrency of 1 is too small too
            expected.append("judge.endpoint.max_concurrency: 1")
        expected.append("judge.endpoint: cannot reach")
        assert [line.split(" ")[0] for line in lines] == [e.split(" ")[0] for e in expected], result.output
        assert all(line.startswith(e) for line, e in zip(lines, expected)), result.output
    assert not (tmp_path / "run").exists()


def test_check_grpo_raises_all_its_problems_in_one_check_failed(tmp_path):
    from writing_rl.config import load_config
    from writing_rl.preflight import CheckFailed, check_grpo
    from writing_rl.train import TrainConfig

    grpo = {"learning_rat": 1e-5, "vllm_mode": "colocated", "report_to": ["tensorbord"], "max_steps": 1}
    cfg = load_config(train_yaml(tmp_path, grpo=grpo), TrainConfig)
    with pytest.raises(CheckFailed) as err:
        check_grpo(cfg)
    assert [line.split(":")[0] for line in str(err.value).splitlines()] == [
        "grpo.learning_rat",
        "grpo.vllm_mode",
        "grpo.report_to",
    ]


def test_a_bad_sample_line_alone_still_exits_1_and_with_other_problems_is_listed_with_them(tmp_path):
    cfg = train_yaml(tmp_path)
    (tmp_path / "s.jsonl").write_text('{"id": 1, "prompt": "x"}\n', encoding="utf-8")  # no references
    result = runner.invoke(app, ["check", str(cfg)])
    assert result.exit_code == 1, result.output
    assert "references" in one_error_line(result)
    cfg = train_yaml(tmp_path, grpo={"max_steps": 1, "report_to": ["none"], "learning_rat": 1e-5})
    (tmp_path / "s.jsonl").write_text('{"id": 1, "prompt": "x"}\n', encoding="utf-8")
    result = runner.invoke(app, ["check", str(cfg)])
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 2 and lines[0].startswith("grpo.learning_rat:") and "references" in lines[1]
