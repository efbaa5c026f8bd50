"""`writing-rl check` on data that loads but is not what the run will read: misspelt sample fields (a warning),
eval task files of the wrong kind (the real benchmark files under each other's task key), an arena opponent with
no arena answers, and the dead-judge hint where the config has no `local_judge` section."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from writing_rl.cli import app
from writing_rl.preflight import CheckFailed, check_endpoint, start_hint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WB, LBW, LBW_EN = (
    SHARED / n for n in ("writingbench_length.jsonl", "longbench_write.jsonl", "longbench_write_en.jsonl")
)
V2 = Path(__file__).resolve().parents[1] / "examples" / "longbench_v2_sample.jsonl"
needs_shared = pytest.mark.skipif(not WB.is_file(), reason="../shared/data not present")
runner = CliRunner()
SAMPLE = {"id": 1, "prompt": "Write a poem.", "references": ["weak", "strong"]}


def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


def eval_yaml(tmp_path: Path, tasks: dict) -> Path:
    cfg = {
        "model": {"name": "m", "transformers_model": str(model_folder(tmp_path))},
        "output_dir": str(tmp_path / "ev"),
        "judge": {"backend": "rule", "rule": {"name": "length_fit"}},
        "tasks": tasks,
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def check(path: Path):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["check", str(path), "--skip-endpoints"])


def one_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# -- eval task files -------------------------------------------------------------------------------------------
@needs_shared
@pytest.mark.parametrize(
    "task,given,expected",
    [
        (
            {"writingbench": {"path": str(LBW_EN)}},
            LBW_EN,
            "tasks.writingbench.path: {f}: line 1: it lacks 'index' (or 'id'), which the WritingBench task reads "
            "(all 60 lines); this looks like a LongBench-Write file (prompt, type, length), which goes under "
            "tasks.longbench_write.path",
        ),
        (
            {"longbench_write": {"path": [str(LBW), str(WB)], "limit": 2}},
            WB,
            "tasks.longbench_write.path: {f}: line 1: it lacks 'prompt' and 'length', which the LongBench-Write task "
            "reads (all 2 lines); this looks like a WritingBench file (index, query, checklist), which goes under "
            "tasks.writingbench.path",
        ),
        (
            {"longbench_v2": {"path": str(LBW)}},
            LBW,
            "tasks.longbench_v2.path: {f}: line 1: it lacks '_id', 'question', 'choice_A', 'choice_B', 'choice_C', "
            "'choice_D', 'answer' and 'context', which the LongBench v2 task reads (all 120 lines); this looks like "
            "a LongBench-Write file",
        ),
        (
            {"arena": {"samples": str(WB)}},
            WB,
            "tasks.arena.samples: {f}: line 1: it lacks 'id', 'prompt' and 'references', which the arena task reads "
            "(all 222 lines); this looks like a WritingBench file",
        ),
    ],
)
def test_a_task_file_of_another_kind_is_named_with_what_it_looks_like(tmp_path, task, given, expected):
    result = check(eval_yaml(tmp_path, task))
    assert result.exit_code == 2, result.output
    assert one_line(result).startswith(expected.format(f=given))


@needs_shared
def test_the_real_files_under_their_own_tasks_pass(tmp_path):
    tasks = {
        "writingbench": {"path": str(WB)},
        "longbench_write": {"path": [str(LBW), str(LBW_EN)]},
        "longbench_v2": {"path": str(V2)},
    }
    result = check(eval_yaml(tmp_path, tasks))
    assert result.exit_code == 0, result.output
    assert f"ok  tasks.writingbench: {WB}: 222 items\n" in result.output
    assert f"ok  tasks.longbench_write: {LBW_EN}: 60 items" in result.output


def test_task_records_the_run_cannot_read_are_named(tmp_path):
    lbw = write_rows(
        tmp_path / "lbw.jsonl",
        [{"prompt": "Write 100 words.", "type": "x", "length": 100}, {"prompt": "Write.", "length": "5000 words"}],
    )
    result = check(eval_yaml(tmp_path, {"longbench_write": {"path": str(lbw)}}))
    assert one_line(result) == (
        f"tasks.longbench_write.path: {lbw}: line 2: its 'length' is '5000 words', not a whole number of words (or "
        "Chinese characters) (1 of 2 lines); its fields: prompt, length"
    )
    # the run reads only the first `limit` rows: a bad row after them is not its concern
    assert check(eval_yaml(tmp_path, {"longbench_write": {"path": str(lbw), "limit": 1}})).exit_code == 0
    # samples without criteria are a WritingBench file of ours: scored on the critic's generic rubric, said so
    samples = write_rows(tmp_path / "s.jsonl", [SAMPLE])
    result = check(eval_yaml(tmp_path, {"writingbench": {"path": str(samples)}}))
    assert result.exit_code == 0, result.output
    assert "1 items (none with criteria: the critic scores them on its generic rubric)" in result.output


def test_an_arena_opponent_without_arena_answers_is_named(tmp_path):
    samples = write_rows(tmp_path / "s.jsonl", [SAMPLE])
    folder = tmp_path / "evals" / "base"
    folder.mkdir(parents=True)
    write_rows(folder / "generations.jsonl", [{"task": "writingbench", "id": "wb:0", "prompt": "p", "output": "o"}])
    result = check(eval_yaml(tmp_path, {"arena": {"samples": str(samples), "opponents": {"base": str(folder)}}}))
    assert result.exit_code == 2
    assert one_line(result) == (
        f"tasks.arena.opponents.base: {folder / 'generations.jsonl'} holds answers for writingbench only, none for "
        "the arena: evaluate that model with the arena task first, or remove the opponent"
    )
    write_rows(folder / "generations.jsonl", [{"task": "arena", "id": 1, "prompt": "p", "output": "o"}])
    result = check(eval_yaml(tmp_path, {"arena": {"samples": str(samples), "opponents": {"base": str(folder)}}}))
    assert result.exit_code == 0, result.output


# -- misspelt sample fields in check ---------------------------------------------------------------------------
def test_check_warns_about_misspelt_sample_fields_and_passes(tmp_path):
    pytest.importorskip("trl")
    samples = write_rows(tmp_path / "s.jsonl", [SAMPLE, {**SAMPLE, "id": 2, "critera": "rhyme"}])
    warning = (
        f"  warn  {samples}: line 2: unknown field 'critera' (did you mean 'criteria'?), on 1 line; kept as an extra "
        "field, so 'criteria' is unset there"
    )
    result = check(eval_yaml(tmp_path, {"arena": {"samples": str(samples)}}))
    assert result.exit_code == 0, result.output
    assert warning in result.output.splitlines() and result.output.count("unknown field") == 1
    train = {
        "model": str(model_folder(tmp_path)),
        "dataset": str(samples),
        "output_dir": str(tmp_path / "run"),
        "judge": {"backend": "rule", "rule": {"name": "low_repetition"}},
        "grpo": {"max_steps": 1, "report_to": ["none"]},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(train), encoding="utf-8")
    result = check(path)
    assert result.exit_code == 0, result.output
    assert warning in result.output.splitlines() and result.output.count("unknown field") == 1


# -- the dead-judge hint without a local_judge section (a verl recipe) -----------------------------------------
def test_the_dead_judge_hint_offers_local_judge_only_where_the_config_has_one():
    from writing_rl.config import LocalJudgeSettings
    from writing_rl.endpoint import EndpointConfig

    assert "local_judge.enabled: true" in start_hint("http://127.0.0.1:8080/v1")
    hint = start_hint("http://127.0.0.1:8080/v1", local_judge=False)
    assert "local_judge" not in hint and "`writing-rl serve-judge --port 8080`" in hint
    assert "judge.endpoint.base_url" in hint
    local = EndpointConfig(base_url="local", model="m")
    with pytest.raises(CheckFailed, match="set local_judge.enabled: true"):
        check_endpoint("judge.endpoint", local, LocalJudgeSettings(), probe=False)
    with pytest.raises(CheckFailed) as err:
        check_endpoint("judge.endpoint", local, None, probe=False)
    assert "local_judge" not in str(err.value) and "writing-rl serve-judge" in str(err.value)
