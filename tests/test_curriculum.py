import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from writing_rl.cli import app
from writing_rl.curriculum import Curriculum, CurriculumConfig, CurriculumStore
from writing_rl.data import Sample

runner = CliRunner()


def sample(i, n_refs=3) -> Sample:
    return Sample(id=i, prompt=f"p{i}", references=[f"ref {k}" for k in range(n_refs)])


@pytest.fixture
def store(tmp_path):
    s = CurriculumStore(tmp_path / "curriculum.sqlite")
    yield s
    s.close()


def test_dynamic_starts_weakest_promotes_on_one_win_and_stays_at_top(store):
    cur = Curriculum(CurriculumConfig(), store)
    s = sample(1)
    assert cur.reference(s, 0) == (0, "ref 0")
    assert cur.record(s, 0, ["loss", "tie", None, "loss"], step=0) == (0, False)  # no win in the group
    assert cur.record(s, 0, ["loss", "win", "loss", "loss"], step=1) == (1, True)  # one win in the group promotes
    assert cur.record(s, 1, ["win"], step=2) == (2, True)
    assert cur.record(s, 2, ["win", "win"], step=3) == (2, False)  # strongest reference: stays
    assert cur.reference(s, 4) == (2, "ref 2")
    assert store.integrity_ok()


def test_k_wins_rule_counts_across_groups(store):
    cur = Curriculum(CurriculumConfig(wins_to_promote=3), store)
    s = sample(1)
    assert cur.record(s, 0, ["win", "loss"], 0) == (0, False)
    assert cur.record(s, 0, ["win", "loss"], 1) == (0, False)
    assert cur.record(s, 0, ["win"], 2) == (1, True)
    # wins at the old level do not count at the new one
    assert cur.record(s, 1, ["win", "win"], 3) == (1, False)


def test_win_rate_rule_exact(store):
    cur = Curriculum(CurriculumConfig(rule="win_rate", window=4, min_win_rate=0.8, tie_credit=0.5), store)
    s = sample(1)
    assert cur.record(s, 0, ["win", "win", "tie", "loss"], 0) == (0, False)  # 2.5/4 = 0.625
    assert cur.record(s, 0, ["win", "win"], 1) == (0, False)  # last 4: tie loss win win = 2.5/4
    assert cur.record(s, 0, ["win", "tie"], 2) == (1, True)  # last 4: win win win tie = 3.5/4 = 0.875


def test_stale_group_cannot_promote_twice(store):
    cur = Curriculum(CurriculumConfig(), store)
    s = sample(1)
    assert cur.record(s, 0, ["win"], 0) == (1, True)
    assert cur.record(s, 0, ["win"], 0) == (1, False)  # a second writer's group judged against level 0: no double promotion


def test_integer_and_string_ids_are_distinct_after_reopen(tmp_path):
    path = tmp_path / "c.sqlite"
    with CurriculumStore(path) as store:
        cur = Curriculum(CurriculumConfig(), store)
        cur.record(sample(5), 0, ["win"], 0)
    with CurriculumStore(path) as store:
        cur = Curriculum(CurriculumConfig(), store)
        assert cur.level(sample(5), 1) == 1
        assert cur.level(sample("5"), 1) == 0


def test_static_schedule_raises_everyone_at_milestones(store):
    cur = Curriculum(CurriculumConfig(schedule="static", milestones=[10, 20]), store)
    s = sample(1)
    assert [cur.level(s, step) for step in (0, 9, 10, 19, 20, 500)] == [0, 0, 1, 1, 2, 2]
    assert cur.record(s, 0, ["win"], 0) == (0, False)  # outcomes do not move a static schedule


def run_schedule(cur: Curriculum, samples: list[Sample], steps: int) -> dict[int, list[int]]:
    """What the trainer does each step: judge every sample at the schedule's level, record the group."""
    used: dict[int, list[int]] = {}
    for step in range(steps):
        used[step] = [cur.level(s, step) for s in samples]
        for s, level in zip(samples, used[step]):
            cur.record(s, level, ["win", "loss"], step)
    return used


@pytest.mark.parametrize(
    "config",
    [
        CurriculumConfig(schedule="static", milestones=[2, 4]),
        CurriculumConfig(schedule="static", milestones=[0, 3]),  # a milestone at 0: level 1 from the start
        CurriculumConfig(schedule="none", seed=5),
        CurriculumConfig(schedule="fixed"),
    ],
    ids=["static", "static-from-0", "none", "fixed"],
)
def test_every_schedule_writes_the_levels_it_used_and_the_plot_replays_them(tmp_path, config):
    from writing_rl.eval.report import level_shares

    path = tmp_path / "curriculum.sqlite"
    samples = [sample(i) for i in range(4)]
    with CurriculumStore(path) as store:
        used = run_schedule(Curriculum(config, store), samples, steps=6)
        assert store.levels() == {s.key: level for s, level in zip(samples, used[5])}
        assert store.integrity_ok()  # every level change is an event
        assert len(store.snapshot()["outcomes"]) == 6 * 4 * 2  # outcomes are kept for every schedule
        changes = sum(
            a != b
            for s in range(4)
            for a, b in zip([0] + [used[k][s] for k in range(5)], [used[k][s] for k in range(6)])
        )
        assert len(store.events()) == changes > 0
    steps, shares = level_shares(path, last_step=5)
    for step in range(6):  # the report's picture at each step is the levels actually used then
        expected = [used[step].count(level) / 4 for level in range(3)]
        assert [shares.get(level, [0.0] * 6)[step] for level in range(3)] == expected, step


def test_cli_curriculum_show_lists_a_static_schedules_levels(store, tmp_path):
    run_schedule(Curriculum(CurriculumConfig(schedule="static", milestones=[1]), store), [sample(1), sample(2)], 2)
    result = runner.invoke(app, ["curriculum", "show", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "2 samples, mean level 1.00, store consistent: True" in result.output
    assert "step 0: 1 0 -> 1" in result.output


def test_static_needs_milestones():
    with pytest.raises(ValidationError, match="milestones"):
        CurriculumConfig(schedule="static")


def test_none_schedule_is_random_per_step_but_fixed_within_a_group(store):
    cur = Curriculum(CurriculumConfig(schedule="none", seed=3), store)
    s = sample(1, n_refs=4)
    levels = [cur.level(s, step) for step in range(200)]
    assert set(levels) == {0, 1, 2, 3}
    assert levels == [cur.level(s, step) for step in range(200)]  # reproducible


def test_snapshot_restore_forgets_later_promotions(store):
    cur = Curriculum(CurriculumConfig(), store)
    a, b = sample("a"), sample("b")
    cur.record(a, 0, ["win"], 0)
    snap = store.snapshot()
    cur.record(a, 1, ["win"], 1)
    cur.record(b, 0, ["win"], 1)
    store.restore(snap)
    assert store.levels() == {a.key: 1}
    assert store.snapshot() == snap
    assert store.integrity_ok()


def test_snapshot_file_roundtrip(store, tmp_path):
    cur = Curriculum(CurriculumConfig(), store)
    cur.record(sample(1), 0, ["win"], 0)
    store.save_snapshot(tmp_path / "snap.json")
    with CurriculumStore(tmp_path / "other.sqlite") as other:
        other.load_snapshot(tmp_path / "snap.json")
        assert other.snapshot() == store.snapshot()


WRITER = textwrap.dedent(
    """
    import sys
    from writing_rl.curriculum import CurriculumStore
    path, worker, n_samples, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = CurriculumStore(path)
    promoted = 0
    for r in range(rounds):
        for i in range(n_samples):
            key = str(i)
            level = store.level(key)
            # every worker records a win against the level it just read
            promoted += store.record(key, 1000, level, [1.0], step=r, should_promote=lambda h: sum(h) >= 1).promoted
    print(promoted)
    """
)


def test_promotions_from_four_processes_are_all_kept(tmp_path):
    path = tmp_path / "shared.sqlite"  # not created beforehand: the four processes open a new file together
    n_samples, rounds = 10, 5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(n_samples), str(rounds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    promoted_per_writer = [int(o.strip()) for o in outputs]
    with CurriculumStore(path) as store:
        events = store.events()
        assert store.integrity_ok()
        levels = store.levels()
        writers = {e["writer"] for e in events}
    # Each recorded win was against the level the writer had just read: it promotes unless another
    # writer promoted the sample in between (then it is stale and must not promote again). Every
    # promotion a writer was told about is in the log and in the levels: none was lost.
    assert sum(promoted_per_writer) == len(events) == sum(levels.values())
    assert all(level >= rounds for level in levels.values())  # at least one promotion per round
    assert len(writers) >= 2


CRASHER = textwrap.dedent(
    """
    import itertools, sys
    from writing_rl.curriculum import CurriculumStore
    store = CurriculumStore(sys.argv[1])
    for step in itertools.count():
        store.record(str(step % 50), 100000, store.level(str(step % 50)), [1.0, 0.0, 1.0], step, lambda h: sum(h) >= 1)
    """
)


def test_killed_writer_leaves_store_consistent(tmp_path):
    path = tmp_path / "crash.sqlite"
    CurriculumStore(path).close()
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(path)])
    deadline = time.monotonic() + 60
    with CurriculumStore(path) as store:
        while len(store.events(limit=300)) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with CurriculumStore(path) as store:
        assert store.integrity_ok()
        before = sum(store.levels().values())
        assert before >= 300
        assert store.record('"fresh"', 3, 0, [1.0], 0, lambda h: True).promoted  # and it is writable again
        assert sum(store.levels().values()) == before + 1


def test_cli_curriculum_show(store, tmp_path):
    cur = Curriculum(CurriculumConfig(), store)
    cur.record(sample(1), 0, ["win"], 0)
    cur.record(sample(2), 0, ["loss"], 0)
    result = runner.invoke(app, ["curriculum", "show", str(tmp_path), "--all"])
    assert result.exit_code == 0, result.output
    assert "2 samples, mean level 0.50, store consistent: True" in result.output
    assert "1 -> 1" not in result.output and "0 -> 1" in result.output
    as_json = json.loads(runner.invoke(app, ["curriculum", "show", str(tmp_path), "--json"]).output)
    assert {s["key"]: s["level"] for s in as_json["samples"]} == {"1": 1, "2": 0}


def test_cli_curriculum_show_missing(tmp_path):
    assert runner.invoke(app, ["curriculum", "show", str(tmp_path)]).exit_code == 2


def folder_state(folder):
    """Every file in `folder` with its bytes and mtime: what a read-only command must leave as it was."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_cli_curriculum_show_refuses_a_judge_cache_and_leaves_it_unchanged(tmp_path):
    from writing_rl.judge.cache import JudgeCache

    cache = JudgeCache(tmp_path / "judge_cache.sqlite")
    cache.put("k", {"verdict": "A"})
    cache.close()
    before = folder_state(tmp_path)
    result = runner.invoke(app, ["curriculum", "show", str(tmp_path / "judge_cache.sqlite")])
    assert result.exit_code == 2, result.output
    assert "is a judge or critic cache" in result.output and "not a curriculum store" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert folder_state(tmp_path) == before  # no curriculum tables written into it, no -wal/-shm left


@pytest.mark.parametrize(
    ("content", "said"),
    [(b"", "an empty SQLite database"), (b"not a database at all, just text\n" * 40, "not an SQLite database")],
)
def test_cli_curriculum_show_refuses_other_files(tmp_path, content, said):
    (tmp_path / "curriculum.sqlite").write_bytes(content)  # a run folder whose store is something else
    before = folder_state(tmp_path)
    result = runner.invoke(app, ["curriculum", "show", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert said in result.output and "not a curriculum store" in result.output
    assert folder_state(tmp_path) == before


def test_cli_curriculum_show_only_reads_the_store(store, tmp_path):
    Curriculum(CurriculumConfig(), store).record(sample(1), 0, ["win"], 0)
    store.close()  # a finished run: everything is in curriculum.sqlite, no -wal beside it
    before = folder_state(tmp_path)
    assert list(before) == ["curriculum.sqlite"]
    result = runner.invoke(app, ["curriculum", "show", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1 samples, mean level 1.00, store consistent: True" in result.output
    assert folder_state(tmp_path) == before


def test_cli_curriculum_show_reads_a_running_store_through_its_wal(tmp_path):
    with CurriculumStore(tmp_path / "curriculum.sqlite") as writer:  # a training run still writing
        cur = Curriculum(CurriculumConfig(), writer)
        cur.record(sample(1), 0, ["win"], 0)
        names = sorted(p.name for p in tmp_path.iterdir())
        first = runner.invoke(app, ["curriculum", "show", str(tmp_path), "--json"])
        cur.record(sample(2), 0, ["win"], 1)  # committed after the first look: the second sees it
        second = runner.invoke(app, ["curriculum", "show", str(tmp_path), "--json"])
        assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert [len(json.loads(r.output)["samples"]) for r in (first, second)] == [1, 2]


def test_cli_curriculum_show_on_a_file_another_process_holds_locked_fails_soon(tmp_path):
    from writing_rl.judge.cache import JudgeCache

    cache = JudgeCache(tmp_path / "judge_cache.rank0.sqlite", exclusive=True)  # as a training rank holds it
    cache.put("k", {"verdict": "A"})
    started = time.monotonic()
    result = runner.invoke(app, ["curriculum", "show", str(tmp_path / "judge_cache.rank0.sqlite")])
    cache.close()
    assert result.exit_code == 2 and "another process holds it locked" in result.output
    assert time.monotonic() - started < 30  # not the writers' 120 s lock timeout
