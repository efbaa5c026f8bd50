"""verl's config and batches for the reward-loop tests: what verl's trainer hands its reward workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fake_openai import FakeOpenAIServer
from omegaconf import OmegaConf

from writing_rl.data import Sample
from writing_rl.verl.export import verl_row

PROMPT_LEN, RESPONSE_LEN = 4, 6


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


def batch(tokenizer: str, rows: list[tuple[Sample, str, str, int | None]], step: int):  # type: ignore[no-untyped-def]
    """A DataProto of (sample, uid, answer, session_id) rows. With session ids, as verl's v1 agent loop hands a
    rollout to a reward worker; with None (all rows), as the batch path (`compute_rm_score`) gets them."""
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

    non_tensors = {
        "data_source": objects([e["data_source"] for e in exported]),
        "reward_model": objects([e["reward_model"] for e in exported]),
        "extra_info": objects([e["extra_info"] for e in exported]),
        "uid": objects([uid for _, uid, _, _ in rows]),
        "global_steps": np.array([step] * len(rows)),
    }
    sessions = [sid for *_, sid in rows]
    if any(sid is not None for sid in sessions):
        non_tensors["session_id"] = np.array(sessions)
    return DataProto.from_dict(
        tensors={
            "prompts": torch.tensor(prompts),
            "responses": torch.tensor(responses),
            "attention_mask": torch.tensor(masks),
        },
        non_tensors=non_tensors,
    )
