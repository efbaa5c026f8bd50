"""How `eval` has the model generate: official settings per benchmark, served models, batched local models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, chat_reply
from typer.testing import CliRunner

from writing_rl.aio import run_sync
from writing_rl.cli import app
from writing_rl.config import ConfigError
from writing_rl.eval.runner import EvalConfig, evaluate, with_command_line
from writing_rl.generation import GenerationStore, Generator, GeneratorConfig, Sampling

runner = CliRunner()


def files(tmp_path: Path) -> dict[str, str]:
    wb = tmp_path / "wb.jsonl"
    checklist = [{"name": f"c{i}", "criteria_description": f"criterion {i}"} for i in range(2)]
    wb.write_text(json.dumps({"index": 1, "domain1": "A", "domain2": "B", "query": "WB?", "checklist": checklist}))
    v2 = tmp_path / "v2.jsonl"
    item = {"_id": "0", "difficulty": "easy", "length": "short", "question": "V2?", "answer": "A", "context": "c"}
    v2.write_text(json.dumps({**item, **{f"choice_{x}": x.lower() for x in "ABCD"}}))
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"id": 0, "prompt": "ARENA?", "references": ["weak", "strong"]}))
    return {"wb": str(wb), "v2": str(v2), "samples": str(samples)}


class Recorder:
    """A served policy that records each generation request by task (read off the prompt); the critic
    and judge get unreadable replies, so their scores are missing and cost nothing."""

    def __init__(self) -> None:
        self.requests: dict[str, dict] = {}

    def __call__(self, path: str, body: dict, n: int) -> tuple:
        if body["model"] != "policy":
            return chat_reply("unreadable")
        user = body["messages"][-1]["content"]
        task = "wb" if "WB?" in user else "v2" if "V2?" in user else "arena" if "ARENA?" in user else "?"
        self.requests[task] = body
        return chat_reply("The correct answer is (A)")


def config(tmp_path: Path, url: str, **over) -> EvalConfig:  # type: ignore[no-untyped-def]
    f = files(tmp_path)
    ep = {"base_url": url, "max_retries": 0}
    tasks = {
        "writingbench": {"path": f["wb"]},
        "longbench_v2": {"path": f["v2"], "max_prompt_tokens": 64},
        "arena": {"samples": f["samples"], "bootstrap_resamples": 100},
    }
    for name, sampling in over.pop("sampling", {}).items():
        tasks[name]["sampling"] = sampling
    return EvalConfig.model_validate(
        {
            "model": {"name": "m", "endpoint": {**ep, "model": "policy"}, "temperature": 0.3, "max_tokens": 64},
            "output_dir": str(tmp_path / "eval"),
            "critic": {"endpoint": {**ep, "model": "critic"}, "parse_retries": 0},
            "judge": {"endpoint": {**ep, "model": "judge"}},
            "tasks": tasks,
            **over,
        }
    )


def sent(body: dict) -> dict:
    return {k: body.get(k) for k in ("temperature", "top_p", "top_k", "min_p", "max_tokens")}


def test_each_benchmark_generates_with_its_official_settings_and_records_them(tmp_path):
    policy = Recorder()
    with FakeOpenAIServer(policy) as server:
        results = evaluate(config(tmp_path, server.base_url, sampling={"longbench_v2": {"max_tokens": 512}}))
    wb = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": None, "max_tokens": 16000}
    assert sent(policy.requests["wb"]) == wb
    # the task's own setting wins over the official one; what neither sets comes from `model`
    v2 = {"temperature": 0.1, "top_p": 0.95, "top_k": None, "min_p": None, "max_tokens": 512}
    assert sent(policy.requests["v2"]) == v2
    arena = {"temperature": 0.3, "top_p": 0.95, "top_k": None, "min_p": None, "max_tokens": 64}  # ours: no official
    assert sent(policy.requests["arena"]) == arena
    recorded = {name: results["scorers"][name]["generation"] for name in ("writingbench", "longbench_v2", "arena")}
    on_disk = json.loads((tmp_path / "eval" / "results.json").read_text())["scorers"]
    assert recorded == {name: on_disk[name]["generation"] for name in recorded}
    assert {k: v for k, v in wb.items() if v is not None} == recorded["writingbench"]


def test_official_sampling_off_generates_with_the_model_settings(tmp_path):
    policy = Recorder()
    with FakeOpenAIServer(policy) as server:
        evaluate(config(tmp_path, server.base_url, official_sampling=False))
    assert sent(policy.requests["wb"]) == sent(policy.requests["arena"])
    assert sent(policy.requests["wb"])["temperature"] == 0.3


def test_command_line_choices_replace_the_config_model_and_tasks(tmp_path):
    cfg = config(tmp_path, "http://127.0.0.1:9/v1")
    served = with_command_line(cfg, endpoint="http://gpu:8000/v1", served_model="qwen-7b", concurrency=32, limit=3)
    assert served.model.name == "qwen-7b" and served.model.transformers_model is None
    assert (served.model.endpoint.base_url, served.model.endpoint.model) == ("http://gpu:8000/v1", "qwen-7b")
    assert served.model.endpoint.max_concurrency == 32
    assert served.tasks.writingbench.limit == served.tasks.arena.limit == served.tasks.longbench_v2.limit == 3
    only = with_command_line(cfg, tasks=["arena", "longbench_v2"])
    assert (only.tasks.writingbench, only.tasks.longbench_write) == (None, None) and only.tasks.arena is not None
    for bad, message in [
        ({"model_path": "/m", "concurrency": 4}, "--concurrency is for a served model"),
        ({"api_key_env": "KEY"}, "give --endpoint"),
        ({"tasks": ["arena", "nope"]}, "no task nope"),
        ({"tasks": ["longbench_write"]}, "longbench_write has no section"),
        ({"served_model": "x"}, "give --endpoint"),
        ({"endpoint": "http://h/v1"}, "needs --model"),
        ({"endpoint": "http://h/v1", "served_model": "x", "model_path": "/m"}, "not both"),
    ]:
        with pytest.raises(ConfigError, match=message):
            with_command_line(cfg, **bad)


def test_another_server_gets_neither_the_configs_key_nor_its_extra_fields(tmp_path):
    cfg = config(tmp_path, "http://127.0.0.1:9/v1")
    secret = {"api_key_env": "OPENAI_API_KEY", "extra_body": {"reasoning_effort": "low"}, "timeout_s": 7.0}
    raw = cfg.model_dump()
    raw["model"]["endpoint"].update(secret)
    cfg = EvalConfig.model_validate(raw)
    other = with_command_line(cfg, endpoint="http://other-host:8000/v1", served_model="foo").model.endpoint
    assert other is not None and other.api_key_env is None and other.extra_body == {}
    assert other.timeout_s == 7.0  # how hard to push carries over
    keyed = with_command_line(cfg, endpoint="http://h/v1", served_model="foo", api_key_env="VLLM_KEY").model.endpoint
    assert keyed is not None and keyed.api_key_env == "VLLM_KEY"


def test_eval_endpoint_from_the_command_line_runs_only_the_chosen_tasks(tmp_path):
    policy = Recorder()
    with FakeOpenAIServer(policy) as server:
        cfg = tmp_path / "eval.yaml"
        raw = config(tmp_path, "http://127.0.0.1:9/v1").model_dump(mode="json", exclude_none=True)
        raw["model"] = {"name": "local", "transformers_model": "/nowhere"}  # replaced by --endpoint
        for part in ("critic", "judge"):
            raw[part]["endpoint"]["base_url"] = server.base_url
        cfg.write_text(json.dumps(raw))
        command = ["eval", str(cfg), "--endpoint", server.base_url, "--model", "policy", "--tasks", "longbench_v2"]
        result = runner.invoke(app, [*command, "--skip-check"])
    assert result.exit_code == 0, result.output
    assert set(policy.requests) == {"v2"}
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["model"] == "policy" and saved["longbench_v2"]["score"] == 100.0
    assert "writingbench" not in saved


def test_batched_local_generation_equals_one_prompt_at_a_time(tmp_path, tiny_model):
    """Left padding: a short prompt batched with long ones gets the answer it gets alone (greedy)."""
    prompts = ["Hi", "Write a long story about a lighthouse keeper and the sea, please.", "Two words", "A poem?"]
    settings = {"name": "tiny", "transformers_model": tiny_model, "temperature": 0, "max_tokens": 12}
    batched = Generator(GeneratorConfig(**settings, batch_size=4), GenerationStore(tmp_path / "a.sqlite"))
    alone = Generator(GeneratorConfig(**settings, batch_size=1), GenerationStore(tmp_path / "b.sqlite"))
    together = run_sync(batched.generate_many(prompts))
    one_by_one = run_sync(alone.generate_many(prompts))
    assert together == one_by_one and all(together)
    assert batched.generated == 4
    assert run_sync(batched.generate_many(prompts)) == together and batched.reused == 4  # stored, not generated again
    assert batched.config.fingerprint() == alone.config.fingerprint()  # batch size changes no answer's key


def test_sampling_falls_through_task_then_official_then_model():
    official = Sampling(temperature=0.7, top_k=20, max_tokens=16000)
    own = Sampling(max_tokens=100)
    merged = own.over(official)
    assert merged == Sampling(temperature=0.7, top_k=20, max_tokens=100)
    model = GeneratorConfig(name="m", transformers_model="/m", temperature=0.2, top_p=0.9, max_tokens=50)
    assert model.with_sampling(merged).sampling() == {"temperature": 0.7, "top_p": 0.9, "top_k": 20, "max_tokens": 100}
    # unset top_k and min_p are not sent, so a cache made before they existed keeps its keys
    assert "top_k" not in model.sampling() and "min_p" not in model.sampling()
    # 0 turns an official top_k / min_p off: a server is not sent the field (OpenAI's API has neither)
    off = model.with_sampling(Sampling(top_k=0, min_p=0, max_tokens=100)).with_sampling(None)
    assert off.sampling()["top_k"] == 0 and "top_k" not in off.request_fields() and "min_p" not in off.request_fields()
