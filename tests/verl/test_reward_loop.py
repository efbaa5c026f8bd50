"""Our reward manager and function inside verl's own reward path: `load_reward_manager` (in process) and
`RewardLoopManager` with 2 `RewardLoopWorker` Ray actors on a local cluster, sharing one curriculum actor."""

from __future__ import annotations

import fake_curriculum
import pytest
from fake_openai import FakeOpenAIServer
from reward_batches import batch, verl_config
from scripted_judge import SAMPLE, judge_by_goods

from writing_rl.verl import reward as verl_reward
from writing_rl.verl.reward import REWARD_KEYS

SAMPLES = [SAMPLE, SAMPLE.model_copy(update={"id": 2}), SAMPLE.model_copy(update={"id": 3})]


async def test_manager_passes_group_rollout_and_step_to_the_reward(tiny_tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    from writing_rl.verl.reward_manager import WritingRewardManager

    fake_curriculum.INSTANCES.clear()
    verl_reward._SCORERS.clear()
    with FakeOpenAIServer(judge_by_goods) as server:
        config = verl_config(tiny_tokenizer, server, "local", "fake_curriculum:connect_local")
        from transformers import AutoTokenizer

        manager = load_reward_manager(config, AutoTokenizer.from_pretrained(tiny_tokenizer))
        assert isinstance(manager, WritingRewardManager)
        out = await manager.run_single(batch(tiny_tokenizer, [(SAMPLE, "uid-a", "good good", 1)], step=7))
        for scorer in verl_reward._SCORERS.values():
            await scorer.reward.judge.aclose()
    assert out["reward_score"] == 1.1 and list(out["reward_extra_info"]) == list(REWARD_KEYS)
    (report,) = fake_curriculum.INSTANCES["local"].reports
    assert (report["uid"], report["rollout_id"], report["step"], report["outcome"]) == ("uid-a", "1", 7, "win")


def test_batch_path_rollout_id_is_the_response(tiny_tokenizer):
    """Without verl's session id, a rollout is known by its response tokens: a retried batch and the copies
    `compute_rm_score` pads with report the ids they had; only token-identical responses share one."""
    from verl.protocol import pad_dataproto_to_divisor

    from writing_rl.verl.reward_manager import rollout_identity

    def ids(data) -> list[str]:  # type: ignore[no-untyped-def]
        return [rollout_identity(data[i : i + 1])["rollout_id"] for i in range(len(data))]

    answers = ["good good", "good", "a note", "good good"]
    data = batch(tiny_tokenizer, [(SAMPLE, "g", a, None) for a in answers], step=1)
    first = ids(data)
    assert len(set(first[:3])) == 3 and first[3] == first[0]
    assert ids(batch(tiny_tokenizer, [(SAMPLE, "g", a, None) for a in answers], step=1)) == first  # a retry
    padded, pad = pad_dataproto_to_divisor(data[:3], 2)
    assert pad == 1 and ids(padded) == [*first[:3], first[0]]  # the padding copy of row 0 is row 0
    with_sessions = batch(tiny_tokenizer, [(SAMPLE, "g", a, i) for i, a in enumerate(answers)], step=1)
    assert ids(with_sessions) == ["0", "1", "2", "3"]  # verl's session id wins where it is given


def test_reward_loop_manager_with_two_workers_scores_a_batch(ray_cluster, tiny_tokenizer):
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    ray = ray_cluster
    levels = {SAMPLES[0].key: 0, SAMPLES[1].key: 1, SAMPLES[2].key: 2}
    actor = ray.remote(fake_curriculum.RecordingActor).options(name="curriculum-test").remote(levels)
    # 3 groups x 2 rollouts; verl splits the 6 rows into one chunk per worker, so group g2 spans both workers
    rows = [
        (SAMPLES[0], "g1", "good good", 0),  # level 0 ("good"): win
        (SAMPLES[0], "g1", "good", 1),  # tie
        (SAMPLES[1], "g2", "good", 0),  # level 1 ("good good"): loss
        (SAMPLES[1], "g2", "mumble", 1),  # no verdict: unknown, the fallback 0.1
        (SAMPLES[2], "g3", "good good good", 0),  # level 2: tie
        (SAMPLES[2], "g3", "good good good good", 1),  # win
    ]
    with FakeOpenAIServer(judge_by_goods) as server:
        config = verl_config(tiny_tokenizer, server, "curriculum-test", "fake_curriculum:connect_actor")
        manager = RewardLoopManager(config)
        assert len(manager.reward_loop_workers) == 2
        out = manager.compute_rm_score(batch(tiny_tokenizer, rows, step=3))
        state = ray.get(actor.state.remote())

    assert out.meta_info["reward_extra_keys"] == list(REWARD_KEYS)
    info = out.non_tensor_batch
    assert info["score"].tolist() == [1.1, 0.55, 0.1, 0.1, 0.55, 1.1]
    assert info["unknown"].tolist() == [0, 0, 0, 1, 0, 0] and info["missing_parse"].tolist() == [0, 0, 0, 1, 0, 0]
    assert info["level"].tolist() == [0, 0, 1, 1, 2, 2]  # one level per group, even across workers
    assert out.batch["rm_scores"].sum(dim=-1).tolist() == pytest.approx(info["score"].tolist())

    reports = {(r["uid"], r["rollout_id"]): (r["level"], r["outcome"], r["step"]) for r in state["reports"]}
    assert len(state["reports"]) == 6 and reports == {
        ("g1", "0"): (0, "win", 3),
        ("g1", "1"): (0, "tie", 3),
        ("g2", "0"): (1, "loss", 3),
        ("g2", "1"): (1, None, 3),
        ("g3", "0"): (2, "tie", 3),
        ("g3", "1"): (2, "win", 3),
    }
    assert sorted({a[0] for a in state["asks"]}) == ["g1", "g2", "g3"]
    for worker in manager.reward_loop_workers:
        ray.kill(worker)
