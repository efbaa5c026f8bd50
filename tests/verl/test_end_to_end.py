"""The two halves together: verl's own `RewardLoopManager` (2 `RewardLoopWorker` Ray actors) scoring through our
reward manager and reward function against the scripted judge, with the real curriculum actor over a run folder.

Three steps of 3 groups x `rollout.n` = 3, each group split across both workers, reached the two ways verl 0.9.1
reaches its reward workers (on samples of their own, one curriculum): one rollout per call with its `session_id`
(the v1 agent loop) and whole batches without one (`compute_rm_score`, which pads 9 rows to 10 with a copy of
the first). Each step is sent as a failing trainer would: a call that reported the first rollouts of every
group only, that call again, then the whole step, then the whole step again. The store must hold what our plain
`Curriculum` computes in the TRL engine's sequential order from the same verdicts: every retry faces the same
references and adds no outcome and no promotion.
"""

from __future__ import annotations

from collections import Counter

from fake_openai import FakeOpenAIServer
from reward_batches import batch, verl_config
from scripted_judge import SAMPLE, judge_by_goods, policy_outcome

from writing_rl.curriculum import Curriculum, CurriculumConfig, CurriculumStore
from writing_rl.rollouts import read_rollouts

N = 3  # rollout.n
PATHS = ("agent_loop", "batch")
# references "good", "good good", "good good good"; samples 1-3 go the agent loop's way, 11-13 the batch path's
SAMPLES = {path: [SAMPLE.model_copy(update={"id": 10 * p + i}) for i in (1, 2, 3)] for p, path in enumerate(PATHS)}
# Per step: (sample, the group's answers). The judge counts "good"s, so the verdicts depend on the reference the
# group faced. Within a group the responses differ: the batch path tells rollouts apart by their tokens.
PLAN = [
    [(0, ["good good", "good", "mumble"]), (1, ["good", "a good", "note"]), (2, ["mumble", "mumble note", "the"])],
    [
        (0, ["good good", "good good good", "good"]),
        (1, ["good good", "good note", "a note"]),
        (2, ["good", "good the", "mumble"]),
    ],
    [
        (0, ["good good good good", "good good", "good good good"]),
        (1, ["good good", "good good note", "good"]),
        (2, ["good good", "mumble", "note"]),
    ],
]
OUTCOMES = ("win", "tie", "loss")


def sequential(tmp_path):
    """The TRL engine's order with our plain `Curriculum`: each step's groups recorded whole, one after another.
    Returns, per (step, path), the (level, verdict) of every rollout and the levels after it; and the store."""
    store = CurriculumStore(tmp_path / "reference.sqlite")
    cur = Curriculum(CurriculumConfig(), store)
    expected = {}
    for step, groups in enumerate(PLAN, start=1):
        for path in PATHS:
            rows = []
            for i, answers in groups:
                sample = SAMPLES[path][i]
                level = cur.level(sample, step - 1)  # TRL's numbering: steps completed before this batch
                verdicts = [policy_outcome(a, sample.references[level]) for a in answers]
                cur.record(sample, level, verdicts, step - 1)
                rows += [(level, v) for v in verdicts]
            expected[step, path] = rows, store.levels()
    return expected, store


def step_rows(path: str, step: int, rollouts: range) -> list:
    """(sample, uid, answer, session_id) rows in verl's order (a group's rollouts adjacent); a fresh uid per group."""
    return [
        (SAMPLES[path][i], f"{path}-{step}-{i}", answer, r if path == "agent_loop" else None)
        for i, answers in PLAN[step - 1]
        for r, answer in enumerate(answers)
        if r in rollouts
    ]


def only(rows: list, rollouts: range) -> list:
    return [row for k, row in enumerate(rows) if k % N in rollouts]


def score(ray, manager, tokenizer: str, path: str, step: int, rollouts: range = range(N)) -> list:
    """(level, verdict) per rollout of `step`, as verl's reward workers return them."""
    data = batch(tokenizer, step_rows(path, step, rollouts), step)
    # agent loop: one rollout per call; verl picks a worker at random, here rollout k of a group goes to k % 2
    if path == "agent_loop":
        workers = [manager.reward_loop_workers[r % 2] for r in rollouts] * len(PLAN[step - 1])
        calls = [w.compute_score.remote(data[k : k + 1]) for k, w in enumerate(workers)]
        infos = [out["reward_extra_info"] for out in ray.get(calls)]
    else:  # one chunk per worker (9 rows: 0-4 and 5-8 plus the padding copy of row 0), so groups span both
        out = manager.compute_rm_score(data).non_tensor_batch
        infos = [{k: out[k][r] for k in ("level", "unknown", *OUTCOMES)} for r in range(len(data))]
    return [
        (int(info["level"]), None if info["unknown"] else next(o for o in OUTCOMES if info[o] == 1.0)) for info in infos
    ]


def test_reward_workers_and_curriculum_actor_match_the_sequential_curriculum(ray_cluster, tiny_tokenizer, tmp_path):
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    from writing_rl.verl.curriculum_actor import start_curriculum
    from writing_rl.verl.groups import GroupSettings

    ray = ray_cluster
    expected, reference = sequential(tmp_path)
    actor = start_curriculum(tmp_path / "run", CurriculumConfig(), GroupSettings(group_size=N), name="e2e")

    def store() -> dict:
        return ray.get(actor.snapshot.remote())["store"]

    with FakeOpenAIServer(judge_by_goods) as server:
        manager = RewardLoopManager(
            verl_config(tiny_tokenizer, server, "e2e", "writing_rl.verl.curriculum_actor:connect_curriculum")
        )
        levels_so_far: dict[str, int] = {}
        for step in (1, 2, 3):
            for path in PATHS:
                judged, levels = expected[step, path]
                first = range(N - 1)
                for _ in range(2):  # a call that reported the first rollouts of each group, and its retry
                    assert score(ray, manager, tiny_tokenizer, path, step, first) == only(judged, first), path
                assert ray.get(actor.levels.remote()) == levels_so_far, path  # no group complete yet
                assert score(ray, manager, tiny_tokenizer, path, step) == judged, path  # the whole step, re-sent
                assert ray.get(actor.levels.remote()) == levels, path
                before = store()
                assert score(ray, manager, tiny_tokenizer, path, step) == judged, path  # once more...
                assert store() == before, path  # ...adds no outcome and no promotion
                levels_so_far = levels
        final = store()
        for path in PATHS:  # step 1 again, after step 3
            assert score(ray, manager, tiny_tokenizer, path, 1) == expected[1, path][0], path
        assert store() == final

    ref = reference.snapshot()
    event = lambda e: tuple(e[1:5])  # noqa: E731  (key, step, from, to)
    assert sorted(map(event, final["events"])) == sorted(map(event, ref["events"]))
    assert len(final["events"]) == 8  # the plan promotes at every step, on both paths
    assert Counter(tuple(o[1:]) for o in final["outcomes"]) == Counter(tuple(o[1:]) for o in ref["outcomes"])
    # the run folder's rollout records, as `writing-rl rollouts` reads them: every rollout once, retries and the
    # padding copy not at all, each numbered by the step it trains, with the level it faced and its verdict
    records = read_rollouts(tmp_path / "run")
    assert Counter((r.step, r.sample, r.level, r.outcome) for r in records) == Counter(
        (step, SAMPLES[path][i].key, level, verdict)
        for (step, path), (judged, _) in expected.items()
        for (i, _), (level, verdict) in zip(((i, r) for i, answers in PLAN[step - 1] for r in answers), judged)
    )
    indices: dict[tuple[int, str], list[int]] = {}
    for r in records:
        indices.setdefault((r.step, r.sample), []).append(r.index)
    assert len(records) == len(PLAN) * len(PATHS) * 3 * N  # 3 steps x 2 paths x 3 groups x N rollouts
    assert all(sorted(found) == list(range(N)) for found in indices.values())  # numbered by arrival in the group
