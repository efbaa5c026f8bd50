"""One training per run folder: a second `train` on a folder another process is training stops before touching
it; a killed process leaves no lock; two ablations on one folder share the trainings instead of both writing one."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from writing_rl import ablation
from writing_rl import run_layout as layout
from writing_rl.errors import ConfigError
from writing_rl.training.config import TrainConfig
from writing_rl.training.run_folder import RunFolderBusy, run_folder_busy, run_lock

HOLDER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from writing_rl.training.run_folder import run_lock

    run = Path(sys.argv[1])
    with run_lock(run):
        print("held", flush=True)
        what = sys.stdin.readline().strip()
        if what == "finish":  # the other process ends its training
            (run / "final").mkdir(parents=True)
        elif what == "die":  # killed after a checkpoint: no release, no final/
            checkpoint = run / "checkpoint-2"
            checkpoint.mkdir(parents=True)
            (checkpoint / "curriculum_snapshot.json").write_text("{}")
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


class Holder:
    """Another process holding `run_dir`'s lock until told what to do (no timing: it answers when it holds it)."""

    def __init__(self, run_dir):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "held"

    def end(self, what: str = "release") -> None:
        self.proc.communicate(what + "\n", timeout=60)


def rule_config(run_dir) -> TrainConfig:
    return TrainConfig.model_validate(
        {"output_dir": str(run_dir), "judge": {"backend": "rule", "rule": {"name": "length_fit"}}}
    )


def test_a_second_training_on_a_busy_folder_stops_before_touching_it(tmp_path):
    pytest.importorskip("trl")
    from writing_rl.train import train

    run = tmp_path / "run"
    holder = Holder(run)
    try:
        assert run_folder_busy(run)
        for overwrite in (False, True):
            with pytest.raises(RunFolderBusy, match="is being trained by another process right now"):
                train(rule_config(run), overwrite=overwrite)
        assert not run.exists()  # nothing written, nothing deleted
    finally:
        holder.end()
    assert not run_folder_busy(run)
    assert layout.lock_file(run).parent == tmp_path  # beside the folder: --overwrite can delete the folder


def test_the_cli_names_a_busy_folder_before_any_check_or_endpoint_probe(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from writing_rl.cli import app

    run = tmp_path / "run"
    cfg = tmp_path / "train.yaml"
    dead = {"base_url": "http://127.0.0.1:9/v1", "max_retries": 0}  # probing it would fail with another line
    cfg.write_text(yaml.safe_dump({"output_dir": str(run), "judge": {"endpoint": dead}}))
    holder = Holder(run)
    try:
        for extra in ([], ["--overwrite"]):
            result = CliRunner().invoke(app, ["train", str(cfg), *extra])
            assert result.exit_code == 2, result.output
            assert "is being trained by another process right now" in result.output
            assert "127.0.0.1:9" not in result.output
    finally:
        holder.end()


def test_one_lock_for_every_spelling_of_a_folder_and_none_inside_it(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "latest").symlink_to(run)
    monkeypatch.chdir(run)
    spellings = [run, tmp_path / "latest", Path("."), Path(f"../{run.name}/")]
    assert {layout.lock_file(p) for p in spellings} == {tmp_path / ".run.lock"}
    with run_lock(Path(".")):
        assert list(run.iterdir()) == []  # `--output-dir .` of an empty folder stays empty
        assert run_folder_busy(tmp_path / "latest") is False  # this process holds it: re-entrant, not busy
    with pytest.raises(ConfigError, match="file system root"), run_lock(Path("/")):
        pass


def test_a_killed_trainer_leaves_no_lock_and_the_lock_is_reentrant_in_one_process(tmp_path):
    run = tmp_path / "run"
    Holder(run).end("die")
    assert not run_folder_busy(run)
    with run_lock(run), run_lock(run):  # the ablation holds it around `train`, which takes it again
        assert not run_folder_busy(run)  # this process holds it
        probe = f"from pathlib import Path; from writing_rl.training.run_folder import run_folder_busy as b; print(b(Path({str(run)!r})))"
        other = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.stdout.strip() == "True"


@pytest.mark.parametrize("other_ends", ["finish", "die"])
def test_an_ablation_leaves_a_training_to_the_process_running_it_and_comes_back_to_it(
    tmp_path, monkeypatch, capsys, other_ends
):
    out = tmp_path / "ablation"
    plan = [ablation.Training(arm, 0, rule_config(out / arm / "seed0")) for arm in ("busy", "free")]
    trained: list[tuple[str, bool]] = []

    def fake_train(cfg, resume=False):  # what `train` leaves behind, without a model
        trained.append((cfg.output_dir, resume))
        (ablation.Path(cfg.output_dir) / layout.FINAL).mkdir(parents=True)

    out.mkdir()
    ablation.add_timing(out, {"kind": "train", "arm": "x", "seed": 0, "steps": 10, "seconds": 100, "step_seconds": 9})
    holder = Holder(plan[0].run_dir)
    ended = []

    def sleep(_seconds):  # the wait for the other process: it ends while this one waits
        if not ended:  # (ending it sleeps too: mark first)
            ended.append(True)
            holder.end(other_ends)

    monkeypatch.setattr(ablation, "train", fake_train)
    monkeypatch.setattr(ablation.time, "sleep", sleep)
    ablation.train_arms(plan, out, ablation.Progress(plan, out, lambda: 0))
    said = capsys.readouterr().out
    assert "training 1/2 busy/seed0: being trained by another process, back to it at the end" in said
    assert "waiting for the other process training" in said
    # the time left counts the process training beside this one (a training measured before: `timings.jsonl`)
    assert re.search(r"training 2/2 free/seed0: training -> \S+; time left: .*shared by 2 processes", said)
    if other_ends == "finish":  # its run is reused, never trained here
        assert trained == [(str(plan[1].run_dir), False)]
        assert "training 1/2 busy/seed0: reusing" in said
    else:  # it died after a checkpoint: resumed here, after the free one
        assert trained == [(str(plan[1].run_dir), False), (str(plan[0].run_dir), True)]
    assert all(t.state() == "finished" for t in plan) and not any(run_folder_busy(t.run_dir) for t in plan)
