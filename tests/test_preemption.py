"""Runs that survive preemption (SIGTERM, SIGUSR1) and a judge outage: they stop or wait at a step boundary and
continue exactly as a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from fake_openai import FakeOpenAIServer  # noqa: E402
from test_train import make_config, scripted_judge, write_samples  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from writing_rl.curriculum import CurriculumStore  # noqa: E402
from writing_rl.engines.preemption import EXIT_PREEMPTED, Preempted  # noqa: E402
from writing_rl.judge.judgement import Judgement  # noqa: E402
from writing_rl.judge.outage import OutageWait, looks_like_outage  # noqa: E402
from writing_rl.judge.verdict import Verdict  # noqa: E402
from writing_rl.reasons import Reason  # noqa: E402
from writing_rl.reward import PairReward  # noqa: E402
from writing_rl.train import train  # noqa: E402

pytestmark = pytest.mark.train


def run_state(run: Path) -> dict:
    """What a run decided and logged, step by step: equal for a run resumed after a stop and one never stopped."""
    with CurriculumStore(run / "curriculum.sqlite") as store:
        levels, events, consistent = store.levels(), store.events(), store.integrity_ok()
    rollouts = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        "levels": levels,
        "events": sorted((e["key"], e["step"], e["from_level"], e["to_level"]) for e in events),
        "consistent": consistent,
        "rollouts": [(r["step"], r["level"], r["completion"], r["outcome"]) for r in rollouts],
        "logged_steps": [m["step"] for m in metrics if "reward" in m],
        "rewards": [round(m["reward"], 6) for m in metrics if "reward" in m],
    }


def final_weights(run: Path) -> dict[str, "torch.Tensor"]:
    from safetensors.torch import load_file

    return load_file(str(run / "final" / "model.safetensors"))


def test_sigterm_mid_step_saves_that_step_and_resume_continues_as_if_never_stopped(tmp_path, tiny_model):
    """SIGTERM while step 4 waits for its judge: the step is finished and saved (checkpoint-4, off the save_steps
    schedule), the exit status is 75 with one line naming the resume command, and the resumed run ends exactly
    where a run that was never stopped ends: the same curriculum, rollouts, logged rewards and final weights."""
    dataset = write_samples(tmp_path / "s.jsonl", {"Write PROMOTE text.": 20})
    release = threading.Event()

    def behaviour(path, body, n):
        if n > 6:  # steps 1-3 answered (2 calls each); step 4 waits until the test has sent the signal
            release.wait(120)
        return scripted_judge(body)

    with FakeOpenAIServer(behaviour) as server:
        cfg = make_config(
            tmp_path, tiny_model, server.base_url, dataset, per_device_train_batch_size=2, max_steps=5, save_steps=3
        )
        cfg_path = tmp_path / "train.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "writing_rl.cli", "train", str(cfg_path), "--skip-check"],
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 300
        while server.calls() < 7 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert server.calls() >= 7, "training never reached step 4"
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(1.0)  # the handler runs while the judge call is still open
        release.set()
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == EXIT_PREEMPTED, output
        run = Path(cfg.output_dir)
        assert "Traceback" not in output
        assert "SIGTERM received: finishing this step" in output
        last = output.strip().splitlines()[-1]
        assert last == (
            f"stopped by SIGTERM after step 4; saved {run / 'checkpoint-4'}; continue with "
            f"`writing-rl train --resume {run}`"
        )
        assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]  # 4: the stop's
        assert (run / "checkpoint-4" / "curriculum_snapshot.json").is_file() and not (run / "final").exists()
        with CurriculumStore(run / "curriculum.sqlite") as store:
            assert store.levels() == {"0": 4}  # step 4's promotion is in the store and in its checkpoint

        resumed = subprocess.run(
            [sys.executable, "-m", "writing_rl.cli", "train", "--resume", str(run), "--skip-check"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr

        never_stopped = make_config(
            tmp_path, tiny_model, server.base_url, dataset, per_device_train_batch_size=2, max_steps=5, save_steps=3
        )
        never_stopped.output_dir = str(tmp_path / "never-stopped")
        train(never_stopped)
    stopped_state, reference = run_state(run), run_state(Path(never_stopped.output_dir))
    assert stopped_state == reference
    assert stopped_state["levels"] == {"0": 5} and stopped_state["logged_steps"] == [1, 2, 3, 4, 5]
    ours, theirs = final_weights(run), final_weights(Path(never_stopped.output_dir))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


class SendSignalAt(TrainerCallback):
    """Sends `signum` to this process when step `step` begins (in the main thread, as a scheduler's would land)."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step:
            os.kill(os.getpid(), self.signum)
        return control


def test_sigusr1_stops_after_the_step_it_landed_in_with_a_checkpoint(tmp_path, tiny_model):
    dataset = write_samples(tmp_path / "s.jsonl", {"Write PROMOTE text.": 20})
    with FakeOpenAIServer(lambda path, body, n: scripted_judge(body)) as server:
        cfg = make_config(
            tmp_path, tiny_model, server.base_url, dataset, per_device_train_batch_size=2, max_steps=6, save_steps=10
        )
        with pytest.raises(Preempted, match=r"stopped by SIGUSR1 after step 2; saved .*checkpoint-2") as stopped:
            train(cfg, callbacks=[SendSignalAt(2, signal.SIGUSR1)])
    run = Path(cfg.output_dir)
    assert stopped.value.checkpoint == str(run / "checkpoint-2")
    assert [p.name for p in run.glob("checkpoint-*")] == ["checkpoint-2"]
    assert {json.loads(line)["step"] for line in (run / "rollouts.jsonl").read_text().splitlines()} == {1, 2}
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the handlers are put back


RANK_SCRIPT = """
import json, os, signal, sys
from transformers import TrainerCallback
from writing_rl.engines.preemption import Preempted
from writing_rl.train import TrainConfig, train

class SignalRankOne(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if os.environ["RANK"] == "1" and state.global_step + 1 == 2:
            os.kill(os.getpid(), signal.SIGUSR1)
        return control

cfg = TrainConfig.model_validate(json.loads(open(sys.argv[1]).read()))
try:
    train(cfg, callbacks=[SignalRankOne()])
    outcome = "finished"
except Preempted as err:
    outcome = str(err)
open(os.path.join(sys.argv[2], "outcome-rank" + os.environ["RANK"]), "w").write(outcome)
"""


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(tmp_path, tiny_model):
    """SLURM may signal only the batch step's process: the ranks agree at each step's end, so rank 0, never
    signalled, saves the checkpoint of the step rank 1 was signalled in and both stop there (none hangs)."""
    from test_train import two_rank_config
    from torchrun import run_two_ranks

    dataset = write_samples(tmp_path / "s.jsonl", {"Write PROMOTE text.": 10, "Write plain text.": 10})
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT, encoding="utf-8")
    with FakeOpenAIServer(lambda path, body, n: scripted_judge(body)) as server:
        cfg = two_rank_config(tmp_path, tiny_model, server.base_url, dataset)
        cfg_path = tmp_path / "train.json"
        cfg_path.write_text(json.dumps(cfg.model_dump(mode="json")), encoding="utf-8")
        run_two_ranks(script, str(cfg_path), str(tmp_path))
    run = Path(cfg.output_dir)
    for rank in (0, 1):
        assert (tmp_path / f"outcome-rank{rank}").read_text().startswith("stopped by SIGUSR1 after step 2; saved")
    assert [p.name for p in run.glob("checkpoint-*")] == ["checkpoint-2"]
    assert (run / "checkpoint-2" / "curriculum_snapshot.json").is_file()


def test_a_second_signal_abandons_the_step_and_names_the_last_checkpoint(tmp_path, tiny_model):
    class Twice(SendSignalAt):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step + 1 == self.step:
                os.kill(os.getpid(), self.signum)
                os.kill(os.getpid(), self.signum)
            return control

    dataset = write_samples(tmp_path / "s.jsonl", {"Write PROMOTE text.": 20})
    with FakeOpenAIServer(lambda path, body, n: scripted_judge(body)) as server:
        cfg = make_config(
            tmp_path, tiny_model, server.base_url, dataset, per_device_train_batch_size=2, max_steps=6, save_steps=1
        )
        with pytest.raises(
            Preempted, match=r"a second SIGTERM during a step.*last checkpoint is .*checkpoint-2.*--resume"
        ):
            train(cfg, callbacks=[Twice(3, signal.SIGTERM)])
    assert not (Path(cfg.output_dir) / "checkpoint-3").exists()


def test_a_signal_before_training_stops_at_once_and_saves_nothing(tmp_path, tiny_model, monkeypatch):
    import writing_rl.train as train_module

    real = train_module.resolve_model

    def resolve_then_signal(name):
        os.kill(os.getpid(), signal.SIGTERM)  # lands while the model is being found, before the first step
        return real(name)

    monkeypatch.setattr(train_module, "resolve_model", resolve_then_signal)
    cfg = make_config(tmp_path, tiny_model, "http://127.0.0.1:9/v1", "demo")
    with pytest.raises(Preempted, match="SIGTERM before training began: nothing was saved; no checkpoint to resume"):
        train(cfg)
    assert not list(Path(cfg.output_dir).glob("checkpoint-*"))


# -- judge outages ----------------------------------------------------------------------------------------------


def unknown(reason: Reason) -> PairReward:
    return PairReward(None, None, (Judgement(Verdict.UNKNOWN, error="down", reason=reason),))


def known() -> PairReward:
    return PairReward(1.0, "win", (Judgement(Verdict.B, text="[[B]]"),))


def test_outage_rules_wait_only_for_a_judge_that_stopped_answering():
    assert looks_like_outage([unknown(Reason.TRANSPORT), unknown(Reason.TIMEOUT), unknown(Reason.HTTP_STATUS)])
    assert not looks_like_outage([unknown(Reason.TRANSPORT), known()])
    assert not looks_like_outage([unknown(Reason.PARSE)])  # the judge answered: not an outage
    assert not looks_like_outage([])

    lines: list[str] = []
    answering = OutageWait("http://judge/v1", 60, poll_s=0.01, probe=lambda url: True, log=lines.append)
    rescored: list[int] = []
    down = [unknown(Reason.HTTP_STATUS)]
    # every call failed, but the server answers its probe (a 400 on every call, say): no wait, no second try
    assert answering.after(down, lambda: rescored.append(1) or [known()]) is down and not rescored and not lines

    state = {"up": False}
    restarting = OutageWait("http://judge/v1", 60, poll_s=0.01, probe=lambda url: state["up"], log=lines.append)
    timer = threading.Timer(0.1, lambda: state.update(up=True))
    timer.start()
    assert restarting.after([unknown(Reason.TRANSPORT)], lambda: [known()])[0].reward == 1.0
    assert "waiting up to 60s" in lines[0] and "answers again" in lines[1]

    dead = OutageWait("http://judge/v1", 0.05, poll_s=0.01, probe=lambda url: False, log=lines.append)
    assert dead.after([unknown(Reason.TRANSPORT)], lambda: [known()])[0].reward is None
    assert dead.gave_up and "still unreachable after 0.05s" in lines[-1]
    n = len(lines)
    dead.after([unknown(Reason.TRANSPORT)], lambda: [known()])  # no second wait for the same outage
    assert len(lines) == n
    dead.after([known()], lambda: [known()])  # the judge answered: the next outage is waited for again
    assert not dead.gave_up


class StopJudgeAfter(TrainerCallback):
    """Stops the judge server at the end of `step`; `restart` starts it again on the same port."""

    def __init__(self, step: int, holder: dict):
        self.step, self.holder = step, holder

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.holder["server"].__exit__()
            self.holder["stopped_at"] = time.monotonic()
        return control

    def restart(self) -> None:
        old = self.holder["server"]
        self.holder["server"] = FakeOpenAIServer(old.behaviour, port=old.httpd.server_address[1]).__enter__()
        self.holder["restarted_at"] = time.monotonic()


def test_a_judge_restarted_mid_run_is_waited_for_and_the_run_goes_on(tmp_path, tiny_model, capfd, monkeypatch):
    """The judge stops after step 2 and is back 3 s after step 3's calls found it gone: step 3 waits for it and is
    judged again, every step gets its rewards, and `max_unknown_steps: 1` (which would stop the run at the first
    rewardless step) never fires."""
    dataset = write_samples(tmp_path / "s.jsonl", {"Write PROMOTE text.": 20})
    holder: dict = {"server": FakeOpenAIServer(lambda path, body, n: scripted_judge(body)).__enter__()}
    stopper = StopJudgeAfter(2, holder)
    original = OutageWait.after

    def after(self, results, rescore):  # the restart is timed from the failed calls, not from the step's start
        if looks_like_outage(results) and "timer" not in holder:
            holder["timer"] = threading.Timer(3.0, stopper.restart)
            holder["timer"].start()
        return original(self, results, rescore)

    monkeypatch.setattr(OutageWait, "after", after)
    try:
        cfg = make_config(
            tmp_path, tiny_model, holder["server"].base_url, dataset, per_device_train_batch_size=2, max_steps=5
        )
        cfg.max_unknown_steps, cfg.outage_wait_s = 1, 120
        train(cfg, callbacks=[stopper])
    finally:
        holder["server"].__exit__()
    out = capfd.readouterr().out
    assert "unreachable (all 2 calls of this step failed" in out and "answers again after" in out, out
    assert holder["restarted_at"] - holder["stopped_at"] >= 3.0
    run = Path(cfg.output_dir)
    rollouts = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rollouts] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert all(r["outcome"] == "win" for r in rollouts)  # step 3 too: judged again once the judge was back
    assert (run / "final").is_dir()


def test_a_server_started_under_the_orphan_guard_stops_when_its_parent_is_killed(tmp_path):
    """The embedded judge server's wrapper: SIGKILL the process that started it (as a scheduler does after its grace
    period) and the server, in a session of its own, stops too instead of holding its port."""
    pid_file = tmp_path / "child.pid"
    parent_code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-m', 'writing_rl.orphan_guard', str(os.getpid()), 'http.server',"
        " '--bind', '127.0.0.1', '0'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    time.sleep(1.0)  # the child is serving
    assert Path(f"/proc/{child}").exists() or sys.platform != "linux"
    parent.kill()
    parent.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{pid}/status").is_file() and "zombie" not in Path(f"/proc/{pid}/status").read_text()

    deadline = time.monotonic() + 30
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(child), "the server outlived the process that started it"
