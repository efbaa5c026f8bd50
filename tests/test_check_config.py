"""Config mistakes that used to pass and fail later (issue 21): an empty file, a key given twice, a config
given to the wrong command, a model name nothing can load, an API key pasted into `api_key_env`. Each is one
line naming the key or file and the fix, before anything is created (and before any hub access)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from writing_rl.cli import app
from writing_rl.config import ConfigError, CoreConfig, load_config
from writing_rl.endpoint import EndpointConfig
from writing_rl.server import free_port

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
SAMPLE = {"id": 1, "prompt": "Write a poem.", "references": ["weak", "strong"]}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing here may reach the hub


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def train_yaml(tmp_path: Path, **over) -> Path:
    """A good train config (rule judge, a fake model folder) with `over` replacing top-level keys."""
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps(SAMPLE) + "\n" + json.dumps({**SAMPLE, "id": 2}) + "\n", encoding="utf-8")
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    cfg = {
        "model": str(folder),
        "dataset": str(samples),
        "output_dir": str(tmp_path / "run"),
        "judge": {"backend": "rule", "rule": {"name": "low_repetition"}},
        "grpo": {"max_steps": 1, "report_to": ["none"]},
        **over,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def only(tmp_path: Path, *names: str) -> None:
    """Nothing was created in tmp_path besides `names` (and the train_yaml inputs)."""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"s.jsonl", "model", "train.yaml", *names})


# -- 1. empty files, keys given twice ----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "\n\n", "# all commented out\n# model: x\n"])
def test_an_empty_config_is_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml is empty: write the config's keys"):
        load_config(path, CoreConfig)
    for command in (["check", str(path)], ["train", str(path)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert one_error_line(result).startswith(f"{path} is empty: write the config's keys in it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: a\ndataset: demo\nmodel: b\n", "key 'model' is given twice (lines 1 and 3)"),
        (
            "judge:\n  backend: rule\n  rule: {name: length_fit}\n  backend: llm\n",
            "key 'judge.backend' is given twice (lines 2 and 4)",
        ),
        (
            "judge:\n  endpoint:\n    base_url: http://a/v1\n    timeout_s: 5\n    base_url: http://b/v1\n",
            "key 'judge.endpoint.base_url' is given twice (lines 3 and 5)",
        ),
        ("grpo: {max_steps: 1, max_steps: 2}\n", "key 'grpo.max_steps' is given twice (lines 1 and 1)"),
        ("rollouts: {}\ngrpo:\n  report_to: [none]\nrollouts: {}\n", "key 'rollouts' is given twice (lines 1 and 4)"),
    ],
)
def test_a_key_given_twice_is_named_with_both_lines(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    for command in (["check", str(path)], ["train", str(path)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert one_error_line(result) == (f"{path}: {expected}: YAML would silently keep the second; keep one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_yaml_anchors_and_merge_keys_are_not_duplicates(tmp_path):
    """An alias repeats a mapping, a merge key (`<<`) is overridden on purpose: neither is a key given twice."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "judge:\n  endpoint: {base_url: http://a/v1, timeout_s: 5}\n"
        "curriculum:\n  <<: {schedule: dynamic, window: 4, milestones: &ms [1]}\n  schedule: static\n"
        "  milestones: *ms\n",
        encoding="utf-8",
    )
    cfg = load_config(path, CoreConfig)
    assert cfg.judge.endpoint.base_url == "http://a/v1" and cfg.curriculum.schedule == "static"


def test_a_yaml_syntax_error_does_not_quote_the_line(tmp_path):
    """YAML's own message quotes the line it stopped at, which may hold a secret."""
    path = tmp_path / "c.yaml"
    path.write_text("judge:\n  endpoint:\n    api_key_env: sk-live-abc: 123\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, CoreConfig)
    assert str(err.value) == f"{path}: not valid YAML: mapping values are not allowed here (line 3, column 29)"


# -- 2. a config given to the wrong command -------------------------------------------------------------------
WRONG = [  # (command, a shipped config of another kind, its kind, the command it is for)
    (["train"], "configs/eval/embedded.yaml", "an eval", "eval"),
    (["train"], "configs/verl/grpo.yaml", "a verl", "train-verl"),
    (["train"], "configs/ablation/length_fit.yaml", "an ablation", "ablation"),
    (["eval"], "configs/demo.yaml", "a train", "train"),
    (["select"], "configs/chain/build_refs.yaml", "a build-refs", "build-refs"),
    (["build-refs"], "configs/chain/select.yaml", "a select", "select"),
    (["ablation"], "configs/eval/embedded.yaml", "an eval", "eval"),
    (["ablation"], "configs/demo.yaml", "a train", "train"),  # no `ablation` section: a train config
    (["train-verl"], "configs/demo.yaml", "a train", "train"),
    (["judge-audit", "--kind", "eval"], "configs/demo.yaml", "a train", "train"),
    (["check", "--kind", "select"], "configs/verl/grpo.yaml", "a verl", "train-verl"),
]


@pytest.mark.parametrize(("command", "shipped", "kind", "right"), WRONG)
def test_a_config_for_another_command_names_the_command_to_run(tmp_path, monkeypatch, command, shipped, kind, right):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / Path(shipped).name
    shutil.copy(ROOT / shipped, path)
    result = runner.invoke(app, [*command, str(path)])
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith(f"{path}: this is {kind} config ("), line
    assert line.endswith(f": run `writing-rl {right} {path}`"), line
    assert "unknown key" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_the_wrong_command_line_names_the_deciding_keys_first(tmp_path):
    path = tmp_path / "ev.yaml"
    shutil.copy(ROOT / "configs/eval/embedded.yaml", path)
    result = runner.invoke(app, ["train", str(path)])
    assert one_error_line(result) == (
        f"{path}: this is an eval config (it has tasks), not a train config: run `writing-rl eval {path}`"
    )
    path = tmp_path / "train.yaml"
    shutil.copy(ROOT / "configs/demo.yaml", path)
    result = runner.invoke(app, ["eval", str(path)])
    assert one_error_line(result) == (
        f"{path}: this is a train config (it has grpo, dataset, audit), not an eval config: run "
        f"`writing-rl train {path}`"
    )


def test_a_misspelt_key_is_still_a_misspelt_key_not_another_command(tmp_path):
    """An eval config whose `tasks` is misspelt reads as no command's config: the usual unknown-key line."""
    path = tmp_path / "ev.yaml"
    data = yaml.safe_load((ROOT / "configs/eval/embedded.yaml").read_text())
    data["taks"] = data.pop("tasks")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = runner.invoke(app, ["eval", str(path)])
    assert result.exit_code == 2
    assert "taks: unknown key; did you mean 'tasks'?" in one_error_line(result)
    assert "this is a" not in result.output


def test_judge_pair_takes_the_judge_of_a_train_config(tmp_path):
    cfg = train_yaml(tmp_path, judge={"backend": "rule", "rule": {"name": "low_repetition"}})
    repeated, fresh = "la " * 12, "the quick brown fox jumps over the lazy dog near the river bank today"
    result = runner.invoke(app, ["judge-pair", "--question", "q", "--a", repeated, "--b", fresh, "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    judgement = json.loads(result.output)
    assert judgement["verdict"] == "B" and "repeated 4-grams" in judgement["text"]  # the rule judge, no endpoint


@pytest.mark.parametrize("shipped", ["configs/eval/embedded.yaml", "configs/verl/grpo.yaml", "configs/core.yaml"])
def test_judge_pair_takes_any_config_with_a_judge(tmp_path, shipped):
    """Each config's own judge is the one called (a dead address here: exit 3 naming that address)."""
    data = yaml.safe_load((ROOT / shipped).read_text())
    url = f"http://127.0.0.1:{free_port()}/v1"
    data["judge"]["endpoint"] = {"base_url": url, "max_retries": 0}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = runner.invoke(app, ["judge-pair", "--question", "q", "--a", "x", "--b", "y", "--config", str(path)])
    assert result.exit_code == 3, result.output
    assert f"judge endpoint {url} failed" in result.output


def test_judge_pair_starts_the_embedded_judge_a_config_asks_for(tmp_path, monkeypatch):
    """base_url: local (with local_judge.enabled) is the embedded judge: judge-pair starts it, as --local does."""
    import writing_rl.server as server

    started = []

    class Started:  # stands in for the llama.cpp server: an address where nothing answers
        base_url, n_ctx, model_path = f"http://127.0.0.1:{free_port()}/v1", 4096, Path("judge.gguf")

        def __enter__(self):
            started.append(self.base_url)
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(server, "LocalJudgeServer", Started)
    data = yaml.safe_load((ROOT / "configs/eval/embedded.yaml").read_text())
    data["judge"]["endpoint"].update(base_url="local", max_retries=0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = runner.invoke(app, ["judge-pair", "--question", "q", "--a", "x", "--b", "y", "--config", str(path)])
    assert started == [Started.base_url], result.output  # without --local
    assert result.exit_code == 3, result.output


def test_judge_pair_names_a_config_without_a_judge(tmp_path):
    path = tmp_path / "sel.yaml"
    shutil.copy(ROOT / "configs/chain/select.yaml", path)
    result = runner.invoke(app, ["judge-pair", "--question", "q", "--a", "x", "--b", "y", "--config", str(path)])
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"{path}: a select config has no judge: give one that has (train")


# -- 3. model names ---------------------------------------------------------------------------------------------
@pytest.fixture
def no_hub(monkeypatch):
    """Any look at the hub, or even at its local cache, fails the test."""
    import huggingface_hub

    def touched(*args, **kwargs):
        raise AssertionError("the Hugging Face hub (cache) was consulted")

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", touched)


GIVE = "give a model folder (a run's final/ or checkpoint-N/), a hub id Org/Model, or embedded:smollm2-135m-instruct"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("runs/demo-1", f"model: runs/demo-1: no such folder: {GIVE}"),
        ("./demo-1", f"model: ./demo-1: no such folder: {GIVE}"),
        ("../demo-1", f"model: ../demo-1: no such folder: {GIVE}"),
        ("~/no-such-model-here", f"model: ~/no-such-model-here: no such folder: {GIVE}"),
        ("a/b/c", f"model: a/b/c: no such folder: {GIVE}"),
        ("Org/checkpoint-50", f"model: Org/checkpoint-50: no such folder: {GIVE}"),
        ("outputs/demo", f"model: outputs/demo: no such folder: {GIVE}"),  # outputs/ exists here
        (
            "embedded:smollm2",
            "model: embedded:smollm2: no such embedded model; the embedded models are embedded:smollm2-135m-instruct "
            "(did you mean embedded:smollm2-135m-instruct?)",
        ),
        (
            "org/na--me",
            f"model: org/na--me: no such folder, and not a hub id (Cannot have -- or .. in repo_id): {GIVE}",
        ),
    ],
)
def test_a_model_name_nothing_can_load_is_named_before_any_hub_access(tmp_path, monkeypatch, no_hub, name, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    cfg = train_yaml(tmp_path, model=name)
    for command in (["check", str(cfg)], ["train", str(cfg)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert one_error_line(result) == expected
    only(tmp_path, "outputs")


def test_a_name_without_org_is_not_a_hub_id_unless_cached(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.chdir(tmp_path)
    cfg = train_yaml(tmp_path, model="demo-1")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    result = runner.invoke(app, ["check", str(cfg)])
    assert result.exit_code == 2
    assert one_error_line(result) == (
        f"model: demo-1: no such folder, and a hub id has the form Org/Model (gpt2 is openai-community/gpt2): {GIVE}"
    )
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: str(tmp_path / "config.json"))
    result = runner.invoke(app, ["check", str(cfg), "--skip-endpoints"])
    assert "model: demo-1 (in the Hugging Face cache)" in result.output, result.output


def test_a_run_folder_given_as_the_model_points_at_its_final(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo-2" / "final").mkdir(parents=True)
    (tmp_path / "runs" / "demo-2" / "final" / "config.json").write_text("{}", encoding="utf-8")
    result = runner.invoke(app, ["check", str(train_yaml(tmp_path, model="runs/demo-2"))])
    assert one_error_line(result) == (
        "model: runs/demo-2 is a run folder, not a model folder: give runs/demo-2/final (or one of its checkpoint-N/)"
    )
    result = runner.invoke(app, ["check", str(train_yaml(tmp_path, model="runs/demo-1"))])
    assert one_error_line(result) == f"model: runs/demo-1: no such folder (did you mean runs/demo-2/final?): {GIVE}"


def test_a_well_formed_hub_id_is_still_a_hub_id(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    result = runner.invoke(app, ["check", str(train_yaml(tmp_path, model="Qwen/Qwen2.5-7B-Instruct"))])
    assert one_error_line(result) == (
        "model: Qwen/Qwen2.5-7B-Instruct is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE "
        "is set"
    )


def test_generator_model_keys_go_through_the_same_check(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": 1, "prompt": "Write."}) + "\n", encoding="utf-8")
    path = tmp_path / "refs.yaml"
    gens = [{"name": "mine", "transformers_model": "runs/demo-1/final"}]
    path.write_text(yaml.safe_dump({"prompts": str(prompts), "generators": gens}), encoding="utf-8")
    for command in (["check", str(path)], ["build-refs", str(path)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert (
            one_error_line(result)
            == f"generators.0 (mine).transformers_model: runs/demo-1/final: no such folder: {GIVE}"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "refs.yaml"]


def eval_yaml(tmp_path: Path) -> Path:
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps(SAMPLE) + "\n", encoding="utf-8")
    path = tmp_path / "eval.yaml"
    cfg = {
        "model": {"name": "m", "endpoint": {"base_url": f"http://127.0.0.1:{free_port()}/v1"}},
        "output_dir": str(tmp_path / "ev"),
        "tasks": {"arena": {"samples": str(samples)}},
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.mark.parametrize("skip", [[], ["--skip-check"]])
def test_eval_model_path_is_checked_before_the_eval_folder_exists(tmp_path, monkeypatch, no_hub, skip):
    monkeypatch.chdir(tmp_path)
    cfg = eval_yaml(tmp_path)
    result = runner.invoke(app, ["eval", str(cfg), "--model-path", "runs/nonexistent", *skip])
    assert result.exit_code == 2, result.output
    assert one_error_line(result) == f"--model-path: runs/nonexistent: no such folder: {GIVE}"
    assert not (tmp_path / "ev").exists()


def test_resolve_model_refuses_what_nothing_can_load(tmp_path, monkeypatch, no_hub):
    from writing_rl.models import resolve_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^model: runs/demo-1: no such folder"):
        resolve_model("runs/demo-1")
    with pytest.raises(ConfigError, match=r"^generators.0: embedded:smol: no such embedded model"):
        resolve_model("embedded:smol", "generators.0")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}", encoding="utf-8")
    assert resolve_model("m") == "m"
    (tmp_path / "tok").mkdir()  # a tokenizer folder (eval's longbench_v2.tokenizer): left to transformers
    assert resolve_model("tok") == "tok"


# -- 4. an API key pasted into api_key_env ------------------------------------------------------------------------
KEYS = [
    "sk-proj-Zq3vN8xT2mK5pL9rW4yB7cD1fH6jA0sE",
    "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",
    "gsk_8fKd93JdkLw02MdkQpZxVb71NcKrTyWuPoIlAsDfGhJk",
    "AIzaSyD3xK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7s",
    "3f9a7c2e1b4d6f8a0c2e4a6b8d0f1e3c",  # 32 hex characters, no prefix
    "Zq3vN8xT2mK5pL9rW4yB7cD1fH6jA0sEe",  # base62, no prefix
]


@pytest.mark.parametrize("key", KEYS)
def test_a_key_in_api_key_env_is_refused_and_never_repeated(tmp_path, monkeypatch, key):
    monkeypatch.chdir(tmp_path)
    cfg = train_yaml(tmp_path, judge={"endpoint": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": key}})
    outputs = []
    for command in (["check", str(cfg)], ["check", str(cfg), "--skip-endpoints"], ["train", str(cfg)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        line = one_error_line(result)
        assert line.startswith(f"{cfg}: judge.endpoint.api_key_env: Value error, this is an API key, not the name")
        outputs.append(result.output)
    assert not any(key in out or key[:12] in out for out in outputs)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != cfg]
    assert not any(key.encode() in p.read_bytes() for p in written)
    only(tmp_path)


def test_the_schema_error_itself_never_holds_the_key():
    """Whoever prints pydantic's own error (it quotes the value it refuses) still shows no key."""
    from pydantic import ValidationError

    for key in KEYS:
        with pytest.raises(ValidationError) as err:
            EndpointConfig(api_key_env=key)
        with pytest.raises(ValidationError) as nested:
            CoreConfig.model_validate({"judge": {"endpoint": {"api_key_env": key}}})
        for e in (err.value, nested.value):
            assert key not in str(e) and key not in repr(e.errors()) and key not in e.json()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sk-123", "not an environment variable name (letters, digits and _, not starting with a digit; the value"),
        ("MY-KEY", "not an environment variable name"),
        ("", "empty: give the name of the environment variable holding the API key, or remove api_key_env"),
        ("$OPENAI_API_KEY", "give the variable's name without $: api_key_env: OPENAI_API_KEY"),
        ("${OPENAI_API_KEY}", "give the variable's name without $: api_key_env: OPENAI_API_KEY"),
    ],
)
def test_api_key_env_must_be_a_variable_name(tmp_path, value, expected):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"judge": {"endpoint": {"api_key_env": value}}}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, CoreConfig)
    assert f"judge.endpoint.api_key_env: Value error, {expected}" in str(err.value)
    if value and "$" not in value:
        assert value not in str(err.value).split("api_key_env:", 1)[1]


@pytest.mark.parametrize(
    "name",
    ["OPENAI_API_KEY", "DASHSCOPE_API_KEY", "JUDGE_API_KEY", "HF_TOKEN", "hf_token", "AZURE_OPENAI_API_KEY_EASTUS2",
     "WRITING_RL_JUDGE_ENDPOINT_API_KEY_FOR_QWEN_72B", "openaiKeyForTheJudge2025", "_KEY"],
)  # fmt: skip
def test_real_variable_names_pass(name):
    assert EndpointConfig(api_key_env=name).api_key_env == name
