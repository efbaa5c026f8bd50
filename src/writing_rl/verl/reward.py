"""The writing-rl reward as a verl custom reward function: `reward.custom_reward_function.path:
pkg://writing_rl.verl.reward`, `name: compute_score`.

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)` once per rollout, in
`RewardLoopWorker` Ray actors; `reward.custom_reward_function.reward_kwargs` arrive as kwargs. Ours are:

- `config`: a YAML file whose `judge`, `reward`, `critic`, `extras` and `rollouts` sections (as in a `writing-rl
  train` config; other top-level keys are ignored, so a whole recipe may be named) configure the judge, reward
  kind and mode, the pointwise critic, extra terms and the rollout records' text cap.
  The same sections may be given inline in `reward_kwargs` instead, and override the file's.
- `unknown_score`: the score of a rollout whose verdict is unknown (judge down, no verdict, injection under
  `unknown`). verl's advantages must be finite, so a missing reward cannot be left out as in TRL; the default
  (null) is the configured loss value (the paper's failures scored its loss value, 0.1 with rewards 1.1/0.55/0.1).
- `curriculum`: the name of the curriculum (a Ray actor, `writing_rl.verl.curriculum_actor`); null judges every
  rollout against the fixed `level` (default -1: the strongest reference).
- `curriculum_factory`: `module:function` that turns that name into a `GroupCurriculum` (default
  `writing_rl.verl.curriculum_actor:connect_curriculum`); another store can plug in here.

Our reward manager (`writing_rl.verl.reward_manager`) adds each rollout's `uid`, `rollout_id` and `global_steps` to
its `extra_info` (verl's reward manager passes the reward function nothing else of the row).
Training rows (`extra_info.split == "train"`) ask the curriculum for their group's level and report the
outcome with the rollout's record (`writing_rl.rollouts`, numbered by `global_steps`, the step it trains, as
the TRL engine numbers its records), which the curriculum actor writes to the run folder's `rollouts.jsonl`;
validation rows use the fixed level and report nothing. An unknown verdict reports `outcome=None`, so
the group completes without moving. Under `reward.kind: pointwise` (`writing_rl.pointwise`) the answer is scored
alone, the reference is not read and every outcome is None: the curriculum moves nothing, and the records still
reach the run folder through it.

Every call returns the same float keys (verl stacks them per key, and logs their means): `score` (what
trains), `pairwise` or `pointwise`, `length`, `repetition` (the parts; the other kind's is 0), `level`, `n_levels`, `win`, `tie`, `loss`, `unknown`,
`injection`, `truncated`, and one `missing_<reason>` flag per reason code (`writing_rl.reasons`), so the mean
of a key over a step is the rate of that outcome or reason.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..critic import CriticConfig
from ..endpoint import EndpointConfig
from ..errors import ConfigError
from ..judge import JudgeConfig, build_judge
from ..pointwise import PointwiseReward, build_scorer, check_credentials, critic_problem
from ..reward import ExtraRewards, PairItem, PairwiseReward, RewardConfig
from ..rollouts import FLAGS, RolloutRecord, RolloutSettings
from .contract import GroupCurriculum
from .export import sample_from_extra_info

DEFAULT_CURRICULUM_FACTORY = "writing_rl.verl.curriculum_actor:connect_curriculum"
_SECTIONS = ("judge", "reward", "critic", "extras", "rollouts")


class VerlRewardSettings(BaseModel):
    """Everything `compute_score` needs, validated once per worker process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    critic: CriticConfig | None = Field(
        None, description="reward.kind pointwise, LLM judge: the critic (null: the judge's)"
    )
    extras: ExtraRewards = Field(default_factory=ExtraRewards)
    rollouts: RolloutSettings = Field(default_factory=RolloutSettings)
    unknown_score: float | None = Field(None, description="score of an unknown verdict; null: the reward's loss value")
    level: int = Field(-1, description="reference index without a curriculum, and for validation (-1: strongest)")
    curriculum: str | None = Field(None, description="the curriculum's name (Ray actor); null: fixed `level`")
    curriculum_factory: str = Field(DEFAULT_CURRICULUM_FACTORY, description="module:function(name) -> curriculum")
    thinking_opened: bool = Field(
        False, description="set by `train-verl` under reward.strip_thinking: the policy's chat template opens <think>"
    )
    reward_workers: int = Field(
        1, ge=1, description="verl's reward.num_workers: the judge's max_concurrency is their total, split evenly"
    )

    @model_validator(mode="after")
    def _critic_called(self) -> VerlRewardSettings:
        if problem := critic_problem(self.reward.kind, self.judge, self.critic):
            raise ValueError(problem)
        return self

    @property
    def fallback(self) -> float:
        return self.reward.loss if self.unknown_score is None else self.unknown_score


def settings_from_kwargs(reward_kwargs: dict[str, Any]) -> VerlRewardSettings:
    """`reward_kwargs` (plain or OmegaConf values) to validated settings; a `ConfigError` names the bad key."""
    data = {k: _plain(v) for k, v in reward_kwargs.items()}
    path = data.pop("config", None)
    merged: dict[str, Any] = {}
    if path is not None:
        merged = {k: v for k, v in _read_yaml(Path(path)).items() if k in _SECTIONS}
    merged.update(data)
    try:
        return VerlRewardSettings.model_validate(merged)
    except ValidationError as err:
        where = f"{path}: " if path else ""
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"reward_kwargs: {where}{problems}") from None


def _plain(value: Any) -> Any:
    """OmegaConf containers (what verl passes) to plain dicts and lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:
        return value
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"reward_kwargs.config: no such file: {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"reward_kwargs.config: {path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"reward_kwargs.config: {path}: expected a mapping at the top level")
    return data


def connect(factory: str, name: str) -> GroupCurriculum:
    """Resolve `module:function` lazily (the Ray actor module needs Ray) and call it with the name."""
    module, _, function = factory.partition(":")
    if not module or not function:
        raise ConfigError(f"reward_kwargs.curriculum_factory: expected 'module:function', got {factory!r}")
    try:
        connect_to = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"reward_kwargs.curriculum_factory: cannot load {factory!r}: {err}") from None
    return connect_to(name)


PARTS = ("pairwise", "pointwise", "length", "repetition")
REWARD_KEYS = ("score", *PARTS, "level", "n_levels", *FLAGS)


def reward_info(record: RolloutRecord, fallback: float) -> dict[str, float]:
    """The record as verl's reward dict (`REWARD_KEYS`): an unknown reward scores `fallback` (so does its kind's
    part), its other terms 0."""
    if record.reward is None:
        reward = dict.fromkeys(PARTS, 0.0) | {"score": fallback, record.kind: fallback}
    else:
        parts = record.components
        reward = {"score": record.reward} | {k: parts.get(k) or 0.0 for k in PARTS}
    out = reward | {"level": record.level, "n_levels": record.n_levels} | record.flags()
    return {k: float(out[k]) for k in REWARD_KEYS}


def worker_endpoint(endpoint: EndpointConfig, workers: int, field: str) -> EndpointConfig:
    """One reward worker's share of any endpoint: `max_concurrency` is the total over all `workers` (as it is over
    training ranks in the TRL engine). Workers do not know their index, so each takes the last rank's share, the
    quotient: together they never exceed the total."""
    return endpoint if workers == 1 else endpoint.for_rank(workers - 1, workers, field)


def worker_share(settings: VerlRewardSettings) -> JudgeConfig:
    """This reward worker's pairwise judge (`worker_endpoint`)."""
    judge = settings.judge
    if judge.backend == "rule":
        return judge
    return judge.model_copy(
        update={"endpoint": worker_endpoint(judge.endpoint, settings.reward_workers, "judge.endpoint")}
    )


class VerlScorer:
    """One per worker process and settings: the judge client, its cache and the curriculum handle are reused; the
    credentials of the endpoint the reward calls are checked when it is built (a `ConfigError`)."""

    def __init__(self, settings: VerlRewardSettings):
        self.settings = settings
        self.reward: PairwiseReward | PointwiseReward
        if settings.reward.kind == "pointwise":
            field = "critic.endpoint" if settings.critic is not None else "judge.endpoint"

            def share(critic: CriticConfig) -> CriticConfig:
                return critic.model_copy(
                    update={"endpoint": worker_endpoint(critic.endpoint, settings.reward_workers, field)}
                )

            self.reward = PointwiseReward(build_scorer(settings.judge, settings.critic, share), settings.reward)
        else:
            self.reward = PairwiseReward(build_judge(worker_share(settings)), settings.reward)
        check_credentials(self.reward)
        self._curriculum: GroupCurriculum | None = None

    @property
    def curriculum(self) -> GroupCurriculum | None:
        if self.settings.curriculum is None:
            return None
        if self._curriculum is None:
            self._curriculum = connect(self.settings.curriculum_factory, self.settings.curriculum)
        return self._curriculum

    def fixed_level(self, n_refs: int) -> int:
        level = self.settings.level
        return min(max(level if level >= 0 else n_refs + level, 0), n_refs - 1)

    async def score(
        self, text: str, extra_info: dict[str, Any], uid: str | None, rollout_id: str | None, step: int
    ) -> dict[str, float]:
        sample = sample_from_extra_info(extra_info)
        n_refs = len(sample.references)
        curriculum = self.curriculum if extra_info.get("split", "train") == "train" and uid is not None else None
        if curriculum is None:
            level = self.fixed_level(n_refs)
        else:
            level = min(max(int(await curriculum.assign(uid, sample.key, n_refs, step)), 0), n_refs - 1)
        text, thinking = self.reward.config.answer(text, self.settings.thinking_opened)
        item = PairItem(sample.prompt_text, text, sample.references[level], sample.criteria_text, sample)
        (result,) = await self.reward.score_batch([item])
        record = RolloutRecord.of_pair(
            step=step,
            sample=sample,
            index=0,
            level=level,
            text=text,
            pair=result,
            extras=self.settings.extras,
            max_text_chars=self.settings.rollouts.max_text_chars,
            thinking_chars=thinking,
        )
        if curriculum is not None:  # the actor writes the record once the report counts (training rows only)
            await curriculum.report(uid, rollout_id or "", sample.key, n_refs, level, result.outcome, step, record)
        return reward_info(record, self.settings.fallback)


_SCORERS: dict[str, VerlScorer] = {}


def scorer_for(reward_kwargs: dict[str, Any]) -> VerlScorer:
    """The process's scorer for these settings (built on first use, then reused by every call)."""
    key = json.dumps({k: _plain(v) for k, v in reward_kwargs.items()}, sort_keys=True, default=str)
    if key not in _SCORERS:
        _SCORERS[key] = VerlScorer(settings_from_kwargs(reward_kwargs))
    return _SCORERS[key]


async def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, float]:
    """verl's custom reward function (see the module docstring for the kwargs and the returned keys); the
    rollout's identity is read from `extra_info`, where our reward manager puts it."""
    scorer = scorer_for(kwargs)
    info = dict(extra_info or {})
    uid, rollout_id, step = (info.get(key) for key in ("uid", "rollout_id", "global_steps"))
    return await scorer.score(
        solution_str,
        info,
        None if uid is None else str(uid),
        None if rollout_id is None else str(rollout_id),
        int(step) if step is not None else 0,
    )
