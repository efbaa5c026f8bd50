"""The judge budget while training: counted over the whole run (retries included, tokens as the server
reports them), stopped with a checkpoint at the step that reaches it, continued exactly with a raised one."""

import json
import threading
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from fake_openai import FakeOpenAIServer, chat_reply  # noqa: E402
from test_train import make_config, scripted_judge, two_rank_config, write_samples  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from writing_rl.cli import app  # noqa: E402
from writing_rl.config import ConfigError  # noqa: E402
from writing_rl.curriculum import CurriculumStore  # noqa: E402
from writing_rl.spend import SPEND_FILE, JudgeBudgetReached, JudgeSpend  # noqa: E402
from writing_rl.train import train  # noqa: E402

pytestmark = pytest.mark.train

# metrics that must not depend on whether the run was interrupted (timings and losses may)
COMPARED = (
    "step",
    "reward",
    "judge/win_rate",
    "judge/loss_rate",
    "judge/calls",
    "judge/prompt_tokens",
    "judge/completion_tokens",
    "curriculum/promotions",
    "curriculum/mean_level",
)


class FlakyJudge:
    """The scripted judge (usage: 10 prompt + 5 completion tokens an answer), failing the first attempt
    of every `fail_every`-th request with a 503, which the client retries."""

    def __init__(self, fail_every: int = 0, usage: bool = True):
        self.fail_every = fail_every
        self.usage = usage
        self.lock = threading.Lock()
        self.answered = 0

    def __call__(self, path: str, body: dict, n: int) -> tuple:
        with self.lock:
            self.answered += 1
            fail = self.fail_every and self.answered % self.fail_every == 0
        if fail:
            return ("status", 503, "busy")
        reply = scripted_judge(body)
        if not self.usage:
            reply[1].pop("usage")
        return reply


def config(tmp_path: Path, model: str, url: str, dataset: str, name: str, **judge):
    """2 completions (one prompt's group) a step, 4 steps, checkpoints only when the budget asks for one."""
    cfg = make_config(tmp_path, model, url, dataset, per_device_train_batch_size=2, max_steps=4, save_steps=10, seed=7)
    endpoint = {**cfg.judge.endpoint.model_dump(), "max_retries": 2, "backoff_initial_s": 0.0, "backoff_max_s": 0.0}
    judge = {**cfg.judge.model_dump(), "endpoint": endpoint, **judge}
    return cfg.model_validate({**cfg.model_dump(), "output_dir": str(tmp_path / name), "judge": judge})


def rows(run: Path) -> list[dict]:
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: r.get(k) for k in COMPARED} for r in logged if "reward" in r]


def test_calls_budget_stops_with_a_checkpoint_and_a_raised_budget_continues_exactly(tmp_path, tiny_model):
    dataset = write_samples(tmp_path / "s.jsonl", {"Write PROMOTE text.": 4, "Write plain text.": 2, "Write more.": 2})
    with FakeOpenAIServer(FlakyJudge()) as server:
        whole = config(tmp_path, tiny_model, server.base_url, dataset, "whole")
        train(whole)  # the same run, never stopped
    with FakeOpenAIServer(FlakyJudge(fail_every=3)) as server:
        cfg = config(tmp_path, tiny_model, server.base_url, dataset, "run", budget={"calls": 5})
        cfg_path = tmp_path / "train.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
        # --skip-check: the check's own probe request would reach the judge too
        first = CliRunner().invoke(app, ["train", str(cfg_path), "--skip-check"])
        sent_first = server.calls()
        run = Path(cfg.output_dir)
        assert first.exit_code == 3, first.output
        # step 1: requests 1 and 2 answered; step 2: request 3 fails and is retried (4), 5 answered: 5 calls
        assert sent_first == 5
        assert "judge calls: 2 a step (2 completions x 1 order) x 4 steps = 8 calls" in first.output  # the estimate
        assert "judge spend: 5 calls (retries included), 60 tokens (40 prompt + 20 completion)" in first.output
        assert "checkpoints: checkpoint-2; no final model (stopped early" in first.output
        assert first.output.strip().splitlines()[-1] == (
            "stopped after step 2: judge budget calls=5 reached; spent 5 calls (retries included), 60 tokens "
            f"(40 prompt + 20 completion); saved {run / 'checkpoint-2'}; continue with "
            f"`writing-rl train --resume {run} --budget calls=10`"
        )
        assert not (run / "final").exists() and sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2"]
        assert (run / "checkpoint-2" / "curriculum_snapshot.json").is_file()
        assert JudgeSpend.load(run / "checkpoint-2" / SPEND_FILE) == JudgeSpend(5, 40, 20)

        # resuming without more budget is refused before a single call
        refused = CliRunner().invoke(app, ["train", "--resume", str(run), "--skip-check"])
        assert refused.exit_code == 2, refused.output
        assert (
            refused.output.strip()
            .splitlines()[-1]
            .startswith(f"cannot resume {run / 'checkpoint-2'}: judge budget calls=5 reached; spent 5 calls")
        )
        assert server.calls() == sent_first

        resumed = CliRunner().invoke(app, ["train", "--resume", str(run), "--budget", "calls=20", "--skip-check"])
        assert resumed.exit_code == 0, resumed.output
        assert "judge spend so far: 5 calls" in resumed.output
        sent = server.calls()
    assert yaml.safe_load((run / "config.yaml").read_text())["judge"]["budget"]["calls"] == 20  # kept for later
    assert (run / "final").is_dir()
    total = JudgeSpend.load(run / SPEND_FILE)
    assert total.calls == sent == 11  # the whole run over both launches: 8 answers and 3 retries
    assert (total.prompt_tokens, total.completion_tokens) == (80, 40)  # a failed attempt reports no usage
    assert "judge spend: 11 calls" in resumed.output
    assert rows(run) == rows(Path(whole.output_dir))  # as if it had never stopped
    with (
        CurriculumStore(run / "curriculum.sqlite") as a,
        CurriculumStore(Path(whole.output_dir) / "curriculum.sqlite") as b,
    ):
        assert a.levels() == b.levels() and a.levels()["0"] > 0


def test_money_budget_counts_the_reported_tokens_at_the_given_prices(tmp_path, tiny_model):
    dataset = write_samples(tmp_path / "s.jsonl", {"Write plain text.": 2, "Write more.": 2})
    price = {"input_per_million": 1000.0, "output_per_million": 2000.0, "currency": "EUR"}
    with FakeOpenAIServer(FlakyJudge()) as server:  # a call: 10 x 1000 + 5 x 2000 per million = 0.02 EUR
        cfg = config(tmp_path, tiny_model, server.base_url, dataset, "run", price=price, budget={"money": 0.05})
        with pytest.raises(JudgeBudgetReached) as stop:
            train(cfg)
        assert server.calls() == 4  # 0.04 EUR after step 1, 0.08 EUR after step 2
    message = str(stop.value)
    assert message.startswith("stopped after step 2: judge budget money=0.0500 EUR reached; spent 4 calls")
    assert "60 tokens (40 prompt + 20 completion), 0.0800 EUR;" in message
    assert "--budget money=0.16" in message and len(message.splitlines()) == 1
    saved = json.loads((Path(cfg.output_dir) / "checkpoint-2" / SPEND_FILE).read_text())
    assert saved["money"] == pytest.approx(0.08) and saved["currency"] == "EUR"


def test_a_token_budget_with_a_server_that_reports_no_usage_stops_at_once(tmp_path, tiny_model):
    dataset = write_samples(tmp_path / "s.jsonl", {"Write plain text.": 2, "Write more.": 2})
    with FakeOpenAIServer(FlakyJudge(usage=False)) as server:
        cfg = config(tmp_path, tiny_model, server.base_url, dataset, "run", budget={"tokens": 1000})
        with pytest.raises(JudgeBudgetReached) as stop:
            train(cfg)
        assert server.calls() == 2
    message = str(stop.value)
    assert message.startswith(
        "stopped after step 1: the judge answered 2 calls without reporting token usage, so the tokens budget "
        "cannot be counted; spent 2 calls"
    )
    assert "2 answers reported no token usage, so the tokens are undercounted" in message
    assert "--budget tokens=none --budget calls=4" in message
    assert (Path(cfg.output_dir) / "checkpoint-1" / "curriculum_snapshot.json").is_file()
    with pytest.raises(ConfigError, match="cannot resume .*checkpoint-1: the judge answered 2 calls without"):
        train(cfg, resume=True)  # the same problem refuses a resume


TRAIN = """
import sys
from writing_rl.cli import main

sys.argv = ["writing-rl", "train", sys.argv[1], "--skip-check"]  # the check's probe would reach the judge
main()
"""


def test_spend_is_counted_over_both_processes(tmp_path, tiny_model):
    """Each rank judges half of a step's completions; the spend, and the stop, count both halves on both ranks."""
    import subprocess
    import sys

    from writing_rl.server import free_port

    dataset = write_samples(tmp_path / "s.jsonl", {"Write PROMOTE text.": 10, "Write plain text.": 10})
    script = tmp_path / "train_cli.py"
    script.write_text(TRAIN, encoding="utf-8")
    with FakeOpenAIServer(lambda p, b, n: chat_reply("[[A]]")) as server:
        cfg = two_rank_config(tmp_path, tiny_model, server.base_url, dataset)
        cfg.judge.budget.calls = 8
        cfg_path = tmp_path / "train.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
            + [str(script), str(cfg_path)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        sent = server.calls()
    run = Path(cfg.output_dir)
    assert result.returncode != 0  # both ranks exit with status 3
    assert sent == 8  # the budget of 8 is reached after step 2, not after step 4 as one rank's 2 calls a step would
    assert JudgeSpend.load(run / "checkpoint-2" / SPEND_FILE).calls == 8
    assert result.stderr.count("stopped after step 2: judge budget calls=8 reached; spent 8 calls") == 2
