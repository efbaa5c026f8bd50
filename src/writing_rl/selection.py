"""Reference pools and margin-aware data selection (`writing-rl build-refs`, `writing-rl select`).

build-refs: one answer per generator per prompt -> a pool file (`refs.jsonl`).
select: the policy answers each prompt, a pointwise critic (or, for ablations of selection itself, a
known-truth rule: `rule_critic`) scores policy answers and every reference, margin = best reference score - mean policy score, and the top prompts are written as
training samples with references sorted weakest first and their scores recorded. Random and
"difficulty" (lowest policy score) selection are there for the ablation.

Every generation and every score is cached in the work folder, so both steps can be stopped and
re-run without losing work or paying twice.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .aio import gather_all, gather_with_progress, run_sync
from .config import LocalJudgeSettings
from .critic import CriticConfig, PointwiseCritic, criteria_list
from .generation import GenerationStore, Generator, GeneratorConfig
from .jsonl import read_jsonl, write_jsonl
from .judge.rules import RuleName, RuleNotApplicable, rule_score
from .prompts import PromptRecord, load_prompts
from .server import point_local_endpoints, with_local_server


class BuildRefsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompts: str = Field(..., description="JSONL of prompts (our sample format or WritingBench's)")
    generators: list[GeneratorConfig] = Field(
        ..., description="each answers every prompt; none: the pool holds the prompt file's own references"
    )
    keep_existing_references: bool = Field(True, description="keep references already in the prompt file as sources")
    output: str = Field("work/refs.jsonl", description="the pool: prompts with a candidate reference per source")
    work_dir: str = Field("work", description="generation store (resumable)")
    local_judge: LocalJudgeSettings = Field(default_factory=LocalJudgeSettings)

    @model_validator(mode="after")
    def _unique_names(self) -> BuildRefsConfig:
        names = [g.name for g in self.generators]
        if not names and not self.keep_existing_references:
            raise ValueError("no generators and keep_existing_references: false leave the pool without references")
        if len(set(names)) != len(names):
            raise ValueError(f"generator names must be unique, got {names}")
        return self


class SelectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pool: str = Field("work/refs.jsonl", description="output of build-refs")
    policy: GeneratorConfig = Field(..., description="the current policy, to sample its answers")
    samples_per_prompt: int = Field(2, ge=1)
    critic: CriticConfig = Field(default_factory=CriticConfig)
    rule_critic: RuleName | None = Field(
        None,
        description="score answers with this known-truth rule (0-100, judge/rules.py) instead of the critic: "
        "to test selection itself, as the selection ablation does",
    )
    strategy: Literal["margin", "random", "difficulty"] = "margin"
    top_k: int | None = Field(None, ge=1, description="keep this many prompts")
    threshold: float | None = Field(None, description="strategy margin: keep prompts whose margin is at least this")
    min_references: int = Field(2, ge=1, description="prompts with fewer scored references are dropped")
    seed: int = 0
    output: str = "work/selected.jsonl"
    report_dir: str = "work/report"
    work_dir: str = "work"
    local_judge: LocalJudgeSettings = Field(default_factory=LocalJudgeSettings)

    @model_validator(mode="after")
    def _how_many(self) -> SelectConfig:
        if self.top_k is None and self.threshold is None:
            raise ValueError("give top_k, threshold, or both")
        if self.threshold is not None and self.strategy != "margin":
            raise ValueError("threshold applies to strategy 'margin' only")
        return self


# -- build-refs ---------------------------------------------------------------------------------


def sources_of(record: PromptRecord, keep_existing: bool) -> dict[str, str]:
    return {f"given-{i}": r for i, r in enumerate(record.references)} if keep_existing else {}


async def build_refs_async(cfg: BuildRefsConfig) -> dict[str, Any]:
    prompts = load_prompts(cfg.prompts)
    store = GenerationStore(Path(cfg.work_dir) / "generations.sqlite")
    generators = [Generator(g, store) for g in cfg.generators]
    # each source answers every prompt in one go: an endpoint concurrently, a local model in batches
    texts = await gather_all(
        g.generate_many([p.prompt for p in prompts], desc=f"references from {g.config.name}") for g in generators
    )
    by_prompt: dict[str, dict[str, str]] = {}
    for g, answers in zip(generators, texts):
        for p, text in zip(prompts, answers):
            if text is not None:
                by_prompt.setdefault(json.dumps(p.id), {})[g.config.name] = text
    rows = []
    for p in prompts:
        candidates = {**sources_of(p, cfg.keep_existing_references), **by_prompt.get(json.dumps(p.id), {})}
        rows.append({**p.model_dump(exclude={"references"}, exclude_none=True), "candidates": candidates})
    write_jsonl(cfg.output, rows)
    for g in generators:
        await g.aclose()
    store.close()
    return {
        "prompts": len(prompts),
        "generated": sum(g.generated for g in generators),
        "reused": sum(g.reused for g in generators),
        "failed": sum(g.failed for g in generators),
        "output": cfg.output,
    }


# -- select -------------------------------------------------------------------------------------


@dataclass
class PromptScores:
    record: dict[str, Any]
    reference_scores: dict[str, float | None]
    policy_scores: list[float | None]

    @property
    def policy_score(self) -> float | None:
        known = [s for s in self.policy_scores if s is not None]
        return statistics.fmean(known) if known else None

    @property
    def best_reference(self) -> float | None:
        known = [s for s in self.reference_scores.values() if s is not None]
        return max(known) if known else None

    @property
    def margin(self) -> float | None:
        """Best reference score minus mean policy score; None when either side has no score."""
        best, policy = self.best_reference, self.policy_score
        return None if best is None or policy is None else best - policy


def rank_prompts(scored: list[PromptScores], strategy: str, seed: int = 0) -> list[PromptScores]:
    """Order usable prompts by the strategy: margin (largest first), difficulty (lowest policy score first), random."""
    usable = [s for s in scored if s.margin is not None]
    if strategy == "margin":
        return sorted(usable, key=lambda s: -s.margin)  # type: ignore[operator]
    if strategy == "difficulty":
        return sorted(usable, key=lambda s: s.policy_score)  # type: ignore[arg-type,return-value]
    shuffled = list(usable)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def choose(ranked: list[PromptScores], top_k: int | None, threshold: float | None) -> list[PromptScores]:
    kept = [s for s in ranked if threshold is None or (s.margin is not None and s.margin >= threshold)]
    return kept[:top_k] if top_k is not None else kept


def to_sample(s: PromptScores) -> dict[str, Any]:
    """A training sample: known-score references sorted weakest first, with their scores and sources."""
    refs = sorted(
        ((src, score) for src, score in s.reference_scores.items() if score is not None), key=lambda t: (t[1], t[0])
    )
    r = s.record
    sample = {
        "id": r["id"],
        "prompt": r["prompt"],
        "references": [r["candidates"][src] for src, _ in refs],
        "reference_scores": [score for _, score in refs],
        "reference_sources": [src for src, _ in refs],
        "policy_score": s.policy_score,
        "margin": s.margin,
    }
    for key in ("criteria", "lang", "length", "domain", "domain1", "domain2"):
        if r.get(key) is not None:
            sample[key] = r[key]
    return sample


# scores one text (a reference or a policy answer) for a pool row; None when it cannot be scored
Scorer = Callable[[dict[str, Any], str], Awaitable[float | None]]


def critic_scorer(critic: PointwiseCritic) -> Scorer:
    async def score(row: dict[str, Any], text: str) -> float | None:
        return (await critic.score(row["prompt"], text, criteria_list(row.get("criteria")))).score

    return score


def _measured(row: dict[str, Any]) -> Any:
    """A pool row as the rules read a sample: `length` and `keywords` (None where the row has none)."""
    return SimpleNamespace(**{"length": None, "keywords": None, **row})


def rule_scorer(rule: RuleName, rows: list[dict[str, Any]]) -> Scorer:
    """The rule's score; a row the rule cannot measure (no `length` for length_fit) gets no score."""
    problems = []
    for row in rows:
        try:
            rule_score(rule, "", _measured(row))
        except RuleNotApplicable as err:
            problems.append(f"{row.get('id')!r}: {err}")
    if problems and len(problems) == len(rows):
        raise ValueError(f"rule_critic {rule} can score none of the {len(rows)} prompts; {problems[0]}")

    async def score(row: dict[str, Any], text: str) -> float | None:
        try:
            return rule_score(rule, text, _measured(row))
        except RuleNotApplicable:
            return None

    return score


async def score_pool(
    cfg: SelectConfig, rows: list[dict[str, Any]], scorer: Scorer, policy: Generator
) -> list[PromptScores]:
    n = cfg.samples_per_prompt
    by_index = await gather_all(
        policy.generate_many([r["prompt"] for r in rows], i, desc=f"sampling the policy ({i + 1}/{n})")
        for i in range(n)
    )
    answers = [by_index[i][row] for row in range(len(rows)) for i in range(n)]  # by row, then sample
    jobs: list[tuple[int, str, str | None]] = []  # (row index, source or "policy", text)
    for i, r in enumerate(rows):
        jobs += [(i, src, text) for src, text in r["candidates"].items()]
        jobs += [(i, "policy", a) for a in answers[i * cfg.samples_per_prompt : (i + 1) * cfg.samples_per_prompt]]

    async def score(i: int, text: str | None) -> float | None:
        if text is None:  # the policy failed to answer: missing, not zero
            return None
        return await scorer(rows[i], text)

    scores = await gather_with_progress((score(i, text) for i, _, text in jobs), "scoring")
    out = [PromptScores(r, {}, []) for r in rows]
    for (i, src, _), sc in zip(jobs, scores):
        if src == "policy":
            out[i].policy_scores.append(sc)
        else:
            out[i].reference_scores[src] = sc
    return out


async def select_async(cfg: SelectConfig) -> dict[str, Any]:
    rows = read_jsonl(cfg.pool)
    if not rows:
        raise ValueError(f"{cfg.pool} holds no prompts")
    work = Path(cfg.work_dir)
    critic = None
    if cfg.rule_critic:
        scorer = rule_scorer(cfg.rule_critic, rows)
    else:
        critic_cfg = (
            cfg.critic
            if cfg.critic.cache_path
            else cfg.critic.model_copy(update={"cache_path": str(work / "critic_cache.sqlite")})
        )
        critic = PointwiseCritic(critic_cfg)
        critic.client.check_credentials()
        scorer = critic_scorer(critic)
    store = GenerationStore(work / "generations.sqlite")
    policy = Generator(cfg.policy, store)
    try:
        scored = await score_pool(cfg, rows, scorer, policy)
    finally:
        if critic is not None:
            await critic.aclose()
        await policy.aclose()
        store.close()
    enough = [s for s in scored if sum(v is not None for v in s.reference_scores.values()) >= cfg.min_references]
    kept = choose(rank_prompts(enough, cfg.strategy, cfg.seed), cfg.top_k, cfg.threshold)
    write_jsonl(cfg.output, [to_sample(s) for s in kept])
    from .selection_report import write_report

    cost = {
        **(
            {
                "critic_calls": critic.client.stats.requests,
                "critic_cache_hits": critic.stats.cache_hits,
                "prompt_tokens": critic.client.stats.prompt_tokens,
                "completion_tokens": critic.client.stats.completion_tokens,
                "missing_scores": critic.stats.missing,
            }
            if critic is not None
            else {"rule_critic": cfg.rule_critic}
        ),
        "policy_generated": policy.generated,
        "policy_reused": policy.reused,
        "policy_failed": policy.failed,
    }
    return write_report(Path(cfg.report_dir), scored, kept, cost, cfg.strategy)


def build_refs(cfg: BuildRefsConfig) -> dict[str, Any]:
    return with_local_server(
        cfg.local_judge, cfg.work_dir, lambda url: run_sync(build_refs_async(point_local_endpoints(cfg, url)))
    )


def select(cfg: SelectConfig) -> dict[str, Any]:
    return with_local_server(
        cfg.local_judge, cfg.work_dir, lambda url: run_sync(select_async(point_local_endpoints(cfg, url)))
    )
