"""The group curriculum verl's reward workers share: plain-class semantics, then the Ray actor under concurrency."""

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from writing_rl.curriculum import Curriculum, CurriculumConfig, CurriculumStore
from writing_rl.data import Sample
from writing_rl.reward import ExtraRewards, PairReward
from writing_rl.rollouts import RolloutRecord, RolloutSettings, RolloutWriter, read_rollouts
from writing_rl.verl.groups import CurriculumGroups, GroupSample, GroupSettings


def groups(tmp_path, group_size=4, metrics=True, **cfg) -> CurriculumGroups:
    cur = Curriculum(CurriculumConfig(**cfg), CurriculumStore(tmp_path / "curriculum.sqlite"))
    return CurriculumGroups(cur, GroupSettings(group_size=group_size), tmp_path / "metrics.jsonl" if metrics else None)


def play(g: CurriculumGroups, uid: str, key: str, outcomes, step: int, n_refs: int = 3) -> int:
    """One group's rollouts reported, each with its record as the reward function sends it."""
    level = g.assign(uid, key, n_refs, step)
    refs = [f"r{i}" for i in range(n_refs)]
    for i, o in enumerate(outcomes):
        rec = record(Sample(id=0, prompt="p", references=refs), level, o, step, f"{uid}/{i}")
        g.report(uid, f"{uid}/{i}", key, n_refs, level, o, step, rec.model_copy(update={"sample": key}))
    return level


# -- plain class ---------------------------------------------------------------------------------------


def test_level_fixed_per_group_and_decided_only_when_complete(tmp_path):
    g = groups(tmp_path)
    assert g.assign("u1", "s", 3, step=1) == 0
    g.report("u1", "r0", "s", 3, 0, "win", 1)
    g.report("u1", "r1", "s", 3, 0, "loss", 1)
    g.report("u1", "r2", "s", 3, 0, "loss", 1)
    assert g.levels() == {}  # 3 of 4 rollouts: nothing decided yet
    assert g.assign("u1", "s", 3, step=1) == 0  # a later ask of the same group: same level
    g.report("u1", "r3", "s", 3, 0, None, 1)
    assert g.levels() == {"s": 1}  # one win in the complete group promotes
    assert g.assign("u1", "s", 3, step=1) == 0  # a decided group still answers the level it was judged at
    assert g.assign("u2", "s", 3, step=2) == 1  # a new group of the same sample faces the next reference


def test_duplicate_reports_count_once(tmp_path):
    g = groups(tmp_path, wins_to_promote=2)
    level = g.assign("u1", "s", 3, 1)
    for _ in range(3):  # a retried reward call reports the same rollout again
        g.report("u1", "r0", "s", 3, level, "win", 1)
    for i in range(1, 4):
        g.report("u1", f"r{i}", "s", 3, level, "loss", 1)
    assert g.levels() == {"s": 0}  # one win, not three: wins_to_promote=2 not reached
    g.report("u1", "r0", "s", 3, level, "win", 1)  # late duplicate of a decided group...
    g.flush(step=3)  # ...is not a new group that a flush would decide
    assert g.curriculum.store.snapshot()["outcomes"] == [[i + 1, "s", 0, 0, s] for i, s in enumerate([1.0, 0, 0, 0])]


def test_unknown_outcomes_complete_the_group_but_move_nothing(tmp_path):
    g = groups(tmp_path)
    play(g, "u1", "s", [None, None, None, None], step=1)
    assert "u1" not in g.pending and "u1" in g.decided
    assert g.levels() == {"s": 0}
    assert g.curriculum.store.snapshot()["outcomes"] == []


def test_incomplete_group_flushed_after_configured_steps(tmp_path):
    g = groups(tmp_path)
    level = g.assign("u1", "s", 3, 1)
    g.report("u1", "r0", "s", 3, level, "win", 1)  # three rollouts never report
    g.assign("other", "t", 3, 2)
    assert g.levels() == {}  # one step later: still waiting (flush_after_steps=2)
    g.assign("other2", "t", 3, 3)
    assert g.levels()["s"] == 1  # flushed with the one win it had
    g.report("u1", "r1", "s", 3, level, "win", 1)  # a straggler after the flush counts nothing
    assert len(g.curriculum.store.snapshot()["outcomes"]) == 1


def test_decided_uids_forgotten_but_old_reports_refused(tmp_path):
    g = groups(tmp_path, group_size=1, wins_to_promote=2)
    play(g, "u1", "s", ["win"], step=1)
    for step in range(2, 12):
        g.assign(f"x{step}", "t", 3, step)
    assert "u1" not in g.decided  # bounded memory: forgotten after forget_after_steps
    g.report("u1", "r0", "s", 3, 0, "win", 1)  # a very late duplicate: refused by its step
    assert g.levels()["s"] == 0 and "u1" not in g.pending
    assert len(g.decided) <= g.settings.forget_after_steps + 1


@pytest.mark.parametrize(
    "cfg,expected",
    [
        ({"schedule": "static", "milestones": [2]}, [0, 0, 1, 1]),  # the level rises once 2 steps are done
        ({"schedule": "fixed", "fixed_level": -1}, [2, 2, 2, 2]),
    ],
)
def test_scheduled_levels_follow_the_trl_numbering(tmp_path, cfg, expected):
    g = groups(tmp_path, group_size=1, **cfg)
    trl = Curriculum(CurriculumConfig(**cfg), CurriculumStore(tmp_path / "ref.sqlite"))
    got = [play(g, f"u{step}", "s", ["loss"], step) for step in range(1, 5)]
    assert got == expected == [trl.level(GroupSample("s", range(3)), step) for step in range(4)]
    assert g.levels() == {"s": expected[-1]}  # the store records the level each group was judged at


def test_none_schedule_random_level_per_group_as_in_trl(tmp_path):
    g = groups(tmp_path, group_size=2, schedule="none", seed=3)
    trl = Curriculum(CurriculumConfig(schedule="none", seed=3), CurriculumStore(tmp_path / "ref.sqlite"))
    got = [play(g, f"u{step}", "s", ["loss", "win"], step, n_refs=4) for step in range(1, 9)]
    assert got == [trl.level(GroupSample("s", range(4)), step) for step in range(8)]
    assert len(set(got)) > 1  # random over the references, the same for the whole group


def test_metrics_line_per_closed_step(tmp_path):
    g = groups(tmp_path, group_size=2)
    play(g, "a", "s", ["win", "loss"], 1)
    play(g, "b", "t", [None, "tie"], 1)
    play(g, "c", "s", ["loss", "loss"], 2)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["step"] == 1
    assert rows[0]["curriculum/promotions"] == 1.0 and rows[0]["judge/unknown_rate"] == 0.25
    assert rows[0]["curriculum/mean_level"] == 0.5  # s at 1, t at 0
    g.finish()  # the end of training closes the last step
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["judge/loss_rate"] == 1.0


def test_a_group_judged_at_a_level_another_group_left_counts_no_promotion(tmp_path):
    """Two groups of one prompt in a step both win at level 0: the store promotes once (the second group's level
    is stale), and the metrics count what the store did, not every group that ends above its own level."""
    g = groups(tmp_path, group_size=1)
    assert g.assign("a", "s", 3, 1) == g.assign("b", "s", 3, 1) == 0
    g.report("a", "r0", "s", 3, 0, "win", 1)
    g.report("b", "r0", "s", 3, 0, "win", 1)
    g.finish()
    [row] = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert g.levels() == {"s": 1} and row["curriculum/promotions"] == 1.0


def record(sample: Sample, level: int, outcome, step: int, text: str) -> RolloutRecord:
    """The rollout record the reward function sends along with its report."""
    reward = None if outcome is None else {"win": 1.0, "tie": 0.5, "loss": 0.0}[outcome]
    pair = PairReward(reward, outcome, ())
    return RolloutRecord.of_pair(
        step=step, sample=sample, index=0, level=level, text=text, pair=pair, extras=ExtraRewards(), max_text_chars=99
    )


def test_counted_reports_become_the_run_folders_rollout_records(tmp_path):
    """Each report that counts writes its record (numbered by arrival in its group); a retried report, one for a
    decided group and one too old write nothing; a restore forgets the records of later steps, as TRL's resume."""
    g = CurriculumGroups(
        Curriculum(CurriculumConfig(), CurriculumStore(tmp_path / "curriculum.sqlite")),
        GroupSettings(group_size=2, forget_after_steps=2, flush_after_steps=2),
        rollouts=RolloutWriter(tmp_path, RolloutSettings()),
    )
    s = Sample(id=7, prompt="p", references=["r0", "r1", "r2"])

    def report(uid, rollout_id, outcome, step, level=0):
        g.report(uid, rollout_id, s.key, 3, level, outcome, step, record(s, level, outcome, step, f"{uid}/{rollout_id}"))

    report("a", "x", "loss", 1)
    report("a", "x", "loss", 1)  # retried
    report("a", "y", "win", 1)  # complete: promotes
    report("a", "z", "win", 1)  # the group is decided
    snap = g.snapshot(step=1)
    report("b", "x", None, 2, level=1)
    for step in (3, 4, 5):
        g.assign(f"later{step}", "t", 3, step)
    report("c", "x", "win", 1)  # too old
    records = read_rollouts(tmp_path)
    assert [(r.step, r.sample, r.index, r.level, r.outcome, r.completion.text) for r in records] == [
        (1, s.key, 0, 0, "loss", "a/x"),
        (1, s.key, 1, 0, "win", "a/y"),
        (2, s.key, 0, 1, None, "b/x"),
    ]
    g.restore(snap)
    assert [r.completion.text for r in read_rollouts(tmp_path)] == ["a/x", "a/y"]


def test_snapshot_restore_round_trip_with_pending_group(tmp_path):
    g = groups(tmp_path)
    play(g, "a", "s", ["win"] * 4, 1)
    level = g.assign("p", "t", 3, 2)
    g.report("p", "r0", "t", 3, level, "win", 2)  # pending: 1 of 4
    snap = json.loads(json.dumps(g.snapshot(step=2)))  # through JSON, as it is written to disk
    play(g, "b", "s", ["win"] * 4, 3)  # progress after the checkpoint...
    g.report("p", "r1", "t", 3, level, "win", 2)
    g.assign("c", "s", 3, 4)
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 3]
    g.restore(snap)  # ...is forgotten on resume
    assert g.levels() == {"s": 1} and g.pending["p"].outcomes == {"r0": "win"}
    for i in (1, 2, 3):
        g.report("p", f"r{i}", "t", 3, level, "loss", 2)  # the pending group completes after the restore
    assert g.levels() == {"s": 1, "t": 1}
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]  # step 3's line dropped on restore (step 2 decided nothing)


def test_report_for_another_level_is_refused(tmp_path):
    g = groups(tmp_path)
    g.assign("u", "s", 3, 1)
    with pytest.raises(ValueError, match="group u"):
        g.report("u", "r0", "s", 3, 2, "win", 1)


def test_settings_validated():
    with pytest.raises(ValueError, match="forget_after_steps"):
        GroupSettings(flush_after_steps=5, forget_after_steps=2)


# -- the Ray actor ----------------------------------------------------------------------------------------


def test_curriculum_show_and_report_read_a_verl_run(tmp_path):
    """The run folder a verl run leaves: the store, the actor's metrics lines, verl's own file-logger lines."""
    from typer.testing import CliRunner

    from writing_rl.cli import app

    g = groups(tmp_path, group_size=2)
    play(g, "a", "s", ["win", "loss"], 1)
    play(g, "b", "t", ["loss", "loss"], 1)
    play(g, "c", "s", ["win", "tie"], 2)
    g.finish()
    verl_log = tmp_path / "verl_metrics-20260101-000000.jsonl"
    verl_log.write_text(
        "".join(
            json.dumps({"step": s, "data": {"critic/score/mean": r, "perf/time_per_step": 9.0}}) + "\n"
            for s, r in ((1, 0.6), (2, 0.8))
        )
    )
    shown = CliRunner().invoke(app, ["curriculum", "show", str(tmp_path), "--json"])
    assert shown.exit_code == 0
    assert {(s["key"], s["level"]) for s in json.loads(shown.output)["samples"]} == {("s", 2), ("t", 0)}
    assert json.loads(shown.output)["consistent"]
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert (
        "<td>2</td><td>0.800</td><td>0.500</td><td>1.000</td><td>9.000</td>" in page
    )  # steps, reward, win, level, time
    assert (out / f"curriculum_{tmp_path.name}.png").is_file()


# -- the Ray actor ----------------------------------------------------------------------------------------


def reward_worker(actor_name: str, rollouts: list, duplicate_every: int) -> list:
    """Like one verl reward worker: asks each rollout's level, then reports it (some twice, as a retry)."""
    from writing_rl.verl.curriculum_actor import connect_curriculum

    async def run() -> list:
        cur = connect_curriculum(actor_name)
        asked = []
        for i, (uid, rid, key, n_refs, outcome, step) in enumerate(rollouts):
            level = await cur.assign(uid, key, n_refs, step)
            asked.append((uid, level))
            for _ in range(2 if i % duplicate_every == 0 else 1):
                await cur.report(uid, rid, key, n_refs, level, outcome, step)
        return asked

    return asyncio.run(run())


def plan(n_samples=12, steps=6, group=4, seed=0):
    rng = random.Random(seed)
    keys = {f"s{k}": 2 + k % 3 for k in range(n_samples)}
    outcomes = {
        (step, key): [rng.choice(["win", "loss", "loss", "tie", None]) for _ in range(group)]
        for step in range(1, steps + 1)
        for key in keys
    }
    return keys, outcomes


def sequential_reference(tmp_path, keys, outcomes, cfg) -> CurriculumStore:
    """The TRL engine's order: each step's groups recorded whole, one after another."""
    store = CurriculumStore(tmp_path / "reference.sqlite")
    cur = Curriculum(cfg, store)
    for (step, key), outs in sorted(outcomes.items()):
        s = GroupSample(key, range(keys[key]))
        cur.record(s, cur.level(s, step - 1), outs, step - 1)
    return store


@pytest.mark.parametrize("cfg", [CurriculumConfig(), CurriculumConfig(wins_to_promote=2, tie_credit=0.5)])
def test_actor_concurrent_workers_match_sequential_reference(ray_cluster, tmp_path, cfg):
    from writing_rl.verl.curriculum_actor import start_curriculum

    ray = ray_cluster
    worker = ray.remote(num_cpus=0)(reward_worker)
    name = f"cur-{cfg.wins_to_promote}"
    actor = start_curriculum(tmp_path / "run", cfg, GroupSettings(group_size=4), name=name)
    keys, outcomes = plan()
    n_workers = 4
    asked = []
    for step in sorted({s for s, _ in outcomes}):
        shards = [[] for _ in range(n_workers)]
        for key, n_refs in keys.items():
            for i, o in enumerate(outcomes[(step, key)]):  # a group's rollouts spread over the workers
                shards[random.Random(f"{step}{key}{i}").randrange(n_workers)].append(
                    (f"{step}-{key}", f"{step}-{key}-{i}", key, n_refs, o, step)
                )
        for shard in shards:
            random.Random(step).shuffle(shard)
        asked += sum(ray.get([worker.remote(name, sh, 3) for sh in shards]), [])
    assert all(len(set(lv for u, lv in asked if u == uid)) == 1 for uid in {u for u, _ in asked})  # one level per group

    ref = sequential_reference(tmp_path, keys, outcomes, cfg)
    assert ray.get(actor.levels.remote()) == ref.levels()
    got = ray.get(actor.snapshot.remote())["store"]
    event = lambda e: tuple(e[1:5])  # noqa: E731  (key, step, from, to)
    assert sorted(map(event, got["events"])) == sorted(map(event, ref.snapshot()["events"]))
    assert len(got["events"]) > 5  # the plan really promotes
    assert Counter(tuple(o[1:]) for o in got["outcomes"]) == Counter(tuple(o[1:]) for o in ref.snapshot()["outcomes"])
    ray.kill(actor)


def test_actor_is_found_by_name_and_reused(ray_cluster, tmp_path):
    from writing_rl.verl.curriculum_actor import connect_curriculum, start_curriculum

    ray = ray_cluster
    a = start_curriculum(tmp_path, CurriculumConfig(), GroupSettings(group_size=1), name="again")
    b = start_curriculum(tmp_path, CurriculumConfig(), GroupSettings(group_size=1), name="again")
    assert a._actor_id == b._actor_id  # get_if_exists: the one already running
    client = connect_curriculum("again")
    assert asyncio.run(client.assign("u", "s", 2, 1)) == 0
    asyncio.run(client.report("u", "r", "s", 2, 0, "win", 1))
    assert client.snapshot()["store"]["samples"][0][:2] == ["s", 1]
    with pytest.raises(RuntimeError, match="no curriculum actor 'missing'"):
        connect_curriculum("missing")
    ray.kill(a)


# -- checkpoints through verl's own callback loader and resume rules ----------------------------------------


def trainer_config(ckpt_dir, resume_mode="auto", resume_from_path=None, name="ckpt-cur"):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "trainer": {
                "checkpoint_callback_class": "writing_rl.verl.checkpoint.CurriculumCheckpoint",
                "default_local_dir": str(ckpt_dir),
                "resume_mode": resume_mode,
                "resume_from_path": resume_from_path,
                "del_local_ckpt_after_load": False,
            },
            "reward": {"custom_reward_function": {"reward_kwargs": {"curriculum": name}}},
        }
    )


def verl_resume_folder(config):
    """The folder verl's own v1 trainer `_load_checkpoint` loads the weights from (workers stubbed)."""
    from types import SimpleNamespace

    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    loaded = []
    stub = SimpleNamespace(
        config=config,
        actor_rollout_wg=SimpleNamespace(load_checkpoint=lambda local_path, **_: loaded.append(local_path)),
        use_critic=False,
        trainer_mode="sync",
        train_dataloader=None,
    )
    PPOTrainer._load_checkpoint(stub)
    return Path(loaded[0]).parent if loaded else None


def verl_save(callback, ckpt_dir: Path, step: int) -> Path:
    """What verl's `_save_checkpoint` does around the hook: the folder, the tracker, then `on_save`."""
    folder = ckpt_dir / f"global_step_{step}"
    (folder / "actor").mkdir(parents=True)
    (ckpt_dir / "latest_checkpointed_iteration.txt").write_text(str(step))
    callback.on_save(trainer=None, global_step=step, checkpoint_dir=str(folder), async_save=False)
    return folder


def test_checkpoint_callback_saves_and_resume_restores(ray_cluster, tmp_path):
    pytest.importorskip("verl.trainer")
    from verl.trainer.ppo.checkpoint_callback import build_checkpoint_callback

    from writing_rl.verl.curriculum_actor import connect_curriculum, start_curriculum

    ray = ray_cluster
    run, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoints"
    settings = GroupSettings(group_size=2)
    actor = start_curriculum(run, CurriculumConfig(), settings, name="ckpt-cur")
    cur = connect_curriculum("ckpt-cur")

    async def group(uid, key, outcomes, step, report_all=True):
        level = await cur.assign(uid, key, 3, step)
        for i, o in enumerate(outcomes if report_all else outcomes[:1]):
            await cur.report(uid, f"{uid}/{i}", key, 3, level, o, step)

    callback = build_checkpoint_callback(trainer_config(ckpt))  # fresh run: nothing to restore
    asyncio.run(group("a", "s", ["win", "loss"], 1))
    asyncio.run(group("p", "t", ["win", "win"], 2, report_all=False))  # pending at the save
    saved = verl_save(callback, ckpt, 2)
    at_save = ray.get(actor.levels.remote())
    asyncio.run(group("b", "s", ["win", "loss"], 3))  # promoted after the checkpoint
    asyncio.run(group("c", "u", ["win", "loss"], 4))
    assert ray.get(actor.levels.remote()) != at_save
    ray.kill(actor)

    (ckpt / "global_step_3" / "actor").mkdir(parents=True)  # a save killed before verl's tracker moved on
    # a new job: a fresh actor over the same run folder, then verl builds the callback before loading weights
    actor = start_curriculum(run, CurriculumConfig(), settings, name="ckpt-cur")
    config = trainer_config(ckpt)
    assert verl_resume_folder(config) == saved
    build_checkpoint_callback(config)
    assert ray.get(actor.levels.remote()) == at_save == {"s": 1}
    cur = connect_curriculum("ckpt-cur")
    asyncio.run(cur.report("p", "p/1", "t", 3, 0, "loss", 2))  # the pending group survived the restore
    assert ray.get(actor.levels.remote()) == {"s": 1, "t": 1}
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]  # lines of steps after the checkpoint are gone

    # resume_path: verl and the callback agree on an explicit folder; a folder without our snapshot is refused
    other = ckpt / "global_step_9"
    (other / "actor").mkdir(parents=True)
    config = trainer_config(ckpt, "resume_path", str(other))
    assert verl_resume_folder(config) == other
    with pytest.raises(FileNotFoundError, match="global_step_9 has no writing_rl_curriculum.json"):
        build_checkpoint_callback(config)
    assert verl_resume_folder(trainer_config(ckpt, "disable")) is None
    build_checkpoint_callback(trainer_config(ckpt, "disable"))
    ray.kill(actor)


def test_a_known_pointwise_reward_is_not_counted_unknown(tmp_path):
    """A pointwise reward has no outcome but a value: the step's unknown rate counts missing rewards, not outcomes."""
    from writing_rl.critic import CriterionScore
    from writing_rl.pointwise import PointReward, PointScore

    g = groups(tmp_path, group_size=2, schedule="none")
    s = Sample(id=7, prompt="p", references=["r0", "r1"])
    for i, value in enumerate((80.0, None)):
        score = PointScore("rule length_fit", value, 0.0, 100.0, (CriterionScore(value, "measured"),))
        point = PointReward(None if value is None else value / 100, score)
        rec = RolloutRecord.of_pair(
            step=1, sample=s, index=i, level=0, text="t", pair=point, extras=ExtraRewards(), max_text_chars=99
        )
        g.report("a", f"r{i}", s.key, 2, 0, None, 1, rec)
    g.finish()
    [row] = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert row["judge/unknown_rate"] == 0.5
