"""From a config file to an audit: the judge, reward and samples a run of that config would use.

Any config with a judge section works: train and ablation configs (their dataset), eval configs (the
arena's samples, judged in both orders as the arena judges), verl recipes (the exported training
parquet) and a bare judge/reward config (`configs/core.yaml`) with `--data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from ..aio import run_sync
from ..config import ConfigError, CoreConfig, LocalJudgeSettings, load_config
from ..data import Sample, load_samples
from ..endpoint import EndpointError
from ..judge import JudgeConfig, PairwiseJudge, build_judge
from ..reward import RewardConfig
from .runner import AuditResult, AuditSettings, audit_judge, unreached


@dataclass
class AuditInputs:
    judge: JudgeConfig
    reward: RewardConfig
    local: LocalJudgeSettings
    samples: list[Sample]
    where: str  # where the samples came from, for messages


def _verl_samples(recipe: BaseModel) -> list[Sample]:
    """The samples `export-verl` stored in the recipe's training parquet."""
    from ..cost import verl_train_files
    from ..verl.export import read_exported

    paths = verl_train_files(recipe)
    if not paths:
        raise ConfigError("verl.data.train_files: not set; give --data SAMPLES.jsonl")
    for path in paths:
        if not Path(path).expanduser().is_file():
            raise ConfigError(f"verl.data.train_files: {path}: no such file (or give --data SAMPLES.jsonl)")
    return read_exported(paths)


def audit_inputs(cfg: BaseModel, data: str | None = None, has_dataset: bool = True) -> AuditInputs:
    """What to audit for a loaded config; `data` (a samples file) replaces the config's own samples.
    `has_dataset`: whether the file named a dataset (a train config's `dataset` defaults to the demo)."""
    from ..eval.runner import EvalConfig
    from ..training.config import TrainConfig
    from ..training.samples import load_train_samples

    judge: JudgeConfig = getattr(cfg, "judge", None)  # type: ignore[assignment]
    if judge is None:
        raise ConfigError(f"a {type(cfg).__name__} has no judge to audit (give a train, eval, verl or judge config)")
    local = getattr(cfg, "local_judge", None) or LocalJudgeSettings()
    reward = getattr(cfg, "reward", None) or RewardConfig()
    if isinstance(cfg, EvalConfig):  # the arena judges both orders
        injection = cfg.tasks.arena.injection if cfg.tasks.arena is not None else "penalize"
        reward = RewardConfig(position="both_average", injection=injection)
    if data is not None:
        return AuditInputs(judge, reward, local, load_samples(data), data)
    if isinstance(cfg, TrainConfig) and has_dataset:
        return AuditInputs(judge, reward, local, load_train_samples(cfg), cfg.dataset)
    if isinstance(cfg, EvalConfig) and cfg.tasks.arena is not None:
        return AuditInputs(judge, reward, local, load_samples(cfg.tasks.arena.samples), cfg.tasks.arena.samples)
    if type(cfg).__name__ == "VerlRecipe":
        return AuditInputs(judge, reward, local, _verl_samples(cfg), "verl.data.train_files")
    raise ConfigError("this config names no samples with references: give --data SAMPLES.jsonl")


def load_any(path: Path, kind: str | None = None) -> tuple[BaseModel, bool]:
    """The config in `path` as the command it is for would read it, and whether it names a dataset."""
    import yaml

    from ..preflight import config_kind, config_model

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError):
        raw = None  # load_config names the problem
    raw = raw if isinstance(raw, dict) else {}
    chosen = kind or config_kind(raw)
    if chosen == "train" and not set(raw) - set(CoreConfig.model_fields):
        return load_config(path, CoreConfig), False  # judge, reward, curriculum only
    return load_config(path, config_model(chosen)), "dataset" in raw or chosen != "train"


def default_folder(config: Path) -> Path:
    """Where `judge-audit` and `check --audit` write an audit of `config` (and keep its judge cache)."""
    return Path("runs") / f"judge-audit-{config.stem}"


def run_audit(
    inputs: AuditInputs, settings: AuditSettings, work_dir: Path, cache: bool = True, progress: bool = True
) -> AuditResult:
    """The audit against the configured judge, starting the embedded one when the config asks for it.

    The judge cache is the config's `judge.cache_path`, else `work_dir/judge_cache.sqlite` (`cache=False`:
    none), so a second audit of the same pairs costs no calls. When no call reaches the judge (a dead
    endpoint) it raises EndpointError, and nothing has been written (the cache is created by the first
    judgement it stores)."""
    from ..server import local_judge_limits, point_local_endpoints, with_local_server

    judge_cfg = local_judge_limits(inputs.judge, inputs.local)
    if judge_cfg.backend == "llm":  # the cache file (and its folder) appears with the first judgement
        path = (judge_cfg.cache_path or str(work_dir / "judge_cache.sqlite")) if cache else None
        judge_cfg = judge_cfg.model_copy(update={"cache_path": path})

    def go(base_url: str | None) -> AuditResult:
        pointed = point_local_endpoints(judge_cfg, base_url)
        result = run_sync(_audit(pointed, inputs, settings, progress))
        if (failure := unreached(result)) is not None:
            raise EndpointError(
                f"no judge call succeeded at {pointed.endpoint.base_url} ({failure}); nothing was written. Start "
                "the judge (`writing-rl serve-judge --port N` for the embedded one) or fix judge.endpoint, and "
                "check it with `writing-rl check CONFIG`"
            )
        return result

    uses_local = judge_cfg.backend == "llm" and judge_cfg.endpoint.base_url == "local"
    return with_local_server(inputs.local if uses_local else LocalJudgeSettings(), str(work_dir), go)


async def _audit(judge_cfg: JudgeConfig, inputs: AuditInputs, settings: AuditSettings, progress: bool) -> AuditResult:
    judge = build_judge(judge_cfg)
    try:
        if isinstance(judge, PairwiseJudge):
            judge.client.check_credentials()
        return await audit_judge(judge, inputs.reward, inputs.samples, settings, progress)
    finally:
        await judge.aclose()
        if isinstance(judge, PairwiseJudge) and judge.cache is not None:
            judge.cache.close()
