"""Our reward manager and function inside verl's own reward path: `load_reward_manager` (in process) and
`RewardLoopManager` with 2 `RewardLoopWorker` Ray actors on a local cluster, sharing one curriculum actor."""

from __future__ import annotations

import os
from pathlib import Path

import fake_curriculum
import numpy as np
import pytest
import torch
from fake_openai import FakeOpenAIServer
from omegaconf import OmegaConf
from scripted_judge import SAMPLE, judge_by_goods

from writing_rl.data import Sample
from writing_rl.verl import reward as verl_reward
from writing_rl.verl.export import verl_row
from writing_rl.verl.reward import REWARD_KEYS

PROMPT_LEN, RESPONSE_LEN = 4, 6
SAMPLES = [SAMPLE, SAMPLE.model_copy(update={"id": 2}), SAMPLE.model_copy(update={"id": 3})]


def verl_config(tokenizer: str, server: FakeOpenAIServer, curriculum: str, factory: str, workers: int = 2):
    """verl 0.9.1's full default trainer config, with our reward function and manager set as a user would."""
    import verl

    config = OmegaConf.load(Path(verl.__file__).parent / "trainer/config/_generated_ppo_trainer.yaml")
    config.actor_rollout_ref.model.path = tokenizer
    config.reward.num_workers = workers
    config.reward.custom_reward_function = {
        "path": "pkg://writing_rl.verl.reward",
        "name": "compute_score",
        "reward_kwargs": {
            "judge": {"endpoint": {"base_url": server.base_url, "model": "fake", "max_retries": 0, "timeout_s": 60}},
            "reward": {"win": 1.1, "tie": 0.55, "loss": 0.1},
            "curriculum": curriculum,
            "curriculum_factory": factory,
        },
    }
    config.reward.reward_manager.source = "importlib"
    config.reward.reward_manager.name = "WritingRewardManager"
    config.reward.reward_manager.module.path = "pkg://writing_rl.verl.reward_manager"
    return config


def batch(tokenizer: str, rows: list[tuple[Sample, str, str, int]], step: int):  # type: ignore[no-untyped-def]
    """A DataProto as verl's v1 agent loop hands it to a reward worker: (sample, uid, answer, session_id) rows."""
    from transformers import AutoTokenizer
    from verl import DataProto

    tok = AutoTokenizer.from_pretrained(tokenizer)
    prompts, responses, masks = [], [], []
    for sample, _, answer, _ in rows:
        p = tok.encode(sample.prompt_text, add_special_tokens=False)[-PROMPT_LEN:]
        r = tok.encode(answer, add_special_tokens=False)[:RESPONSE_LEN]
        prompts.append([tok.pad_token_id] * (PROMPT_LEN - len(p)) + p)
        responses.append(r + [tok.pad_token_id] * (RESPONSE_LEN - len(r)))
        masks.append([0] * (PROMPT_LEN - len(p)) + [1] * (len(p) + len(r)) + [0] * (RESPONSE_LEN - len(r)))
    exported = [verl_row(s, i, "train") for i, (s, *_) in enumerate(rows)]

    def objects(values: list) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    return DataProto.from_dict(
        tensors={
            "prompts": torch.tensor(prompts),
            "responses": torch.tensor(responses),
            "attention_mask": torch.tensor(masks),
        },
        non_tensors={
            "data_source": objects([e["data_source"] for e in exported]),
            "reward_model": objects([e["reward_model"] for e in exported]),
            "extra_info": objects([e["extra_info"] for e in exported]),
            "uid": objects([uid for _, uid, _, _ in rows]),
            "session_id": np.array([sid for *_, sid in rows]),
            "global_steps": np.array([step] * len(rows)),
        },
    )


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


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    here = Path(__file__).parent
    path = os.pathsep.join(str(p.resolve()) for p in (here.parent.parent / "src", here.parent, here))
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )
    yield ray
    ray.shutdown()


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
