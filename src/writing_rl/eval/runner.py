"""`writing-rl eval CONFIG`: run benchmarks against one model and keep everything needed to re-score.

The output folder holds `generations.sqlite` (every model output, reused on re-runs, so changing the
critic or judge re-scores without re-generating), `generations.jsonl` and `judgements.jsonl` (all
outputs and all scores, readable: one row per item, typed in `eval/items.py`), and `results.json` (the
numbers). Missing judgements are excluded and counted, never scored as zero: each row says why its item has
no score (`missing_reason`), and each task counts them by reason code (`missing_reasons`, see
`writing_rl.reasons`). The arena scores through the training reward (`PairwiseReward`, both orders): an
answer that addresses the judge, the model's or an opponent's, is caught by the injection screen before any
call (`arena.injection`, as in training).
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..aio import gather_with_progress, run_sync
from ..config import ConfigError, LocalJudgeSettings
from ..critic import CriticConfig, PointwiseCritic, criteria_list
from ..data import Criterion, load_jsonl, sample_key
from ..endpoint import EndpointError
from ..generation import GenerationStore, Generator, GeneratorConfig, Sampling
from ..jsonl import read_jsonl, write_jsonl
from ..judge import JudgeConfig, PairwiseJudge, build_judge
from ..judge.cache import cache_key
from ..judge.judgement import Judge
from ..judge.sanitize import sanitize
from ..judge.screen import InjectionPolicy
from ..outcome import Outcome
from ..prompts import load_prompts
from ..reasons import Reason, unexpected_failure
from ..reward import PairItem, PairwiseReward, RewardConfig
from ..server import local_judge_limits, point_local_endpoints, with_local_server
from ..text_metrics import count_length, length_score
from ..thinking import answer_after_thinking
from . import creative_writing as cw
from . import longbench_write as lbw
from . import longctx
from .items import (
    ArenaInjections,
    ArenaItem,
    CreativeWritingItem,
    ItemResult,
    LongInputItem,
    LongWriteItem,
    WritingBenchItem,
)
from .requirements import load_requirements, requirement_scores
from .stats import bootstrap_ci, bradley_terry, position_consistency

logger = logging.getLogger(__name__)
R = TypeVar("R")


class TaskSlice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | list[str] = Field(..., description="one file, or several of the same format")
    limit: int | None = Field(None, ge=1, description="first N items of each file only")
    sampling: Sampling = Field(
        default_factory=Sampling, description="how the model generates here; unset fields: official, then `model`"
    )

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


class WritingBenchTask(TaskSlice):
    requirement_dir: str | None = Field(
        None,
        description="WritingBench's requirement/ folder ({style,format,length}/{req}_subset[_C].jsonl) for its "
        "R and C scores; default: a requirement/ folder beside the task file, as in the official layout",
    )

    def requirement_folder(self) -> Path | None:
        if self.requirement_dir is not None:
            if not Path(self.requirement_dir).is_dir():
                raise ValueError(f"writingbench.requirement_dir: {self.requirement_dir}: no such folder")
            return Path(self.requirement_dir)
        beside = [Path(p).parent / "requirement" for p in self.paths]
        return next((folder for folder in beside if folder.is_dir()), None)


class LongWriteTask(TaskSlice):
    strip_thinking: bool = Field(
        False,
        description="score a reasoning model's answer only (after its last </think>); not official: the "
        "official scripts count and judge the whole output",
    )


class ArenaTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: str = Field(..., description="samples JSONL with references (the strongest is the opponent)")
    limit: int | None = Field(None, ge=1)
    opponents: dict[str, str] = Field(default_factory=dict, description="name -> another eval folder to compare with")
    bootstrap_resamples: int = Field(2000, ge=100)
    injection: InjectionPolicy = Field(
        "penalize", description="an answer that addresses the judge: penalize (it loses), unknown (missing) or off"
    )
    sampling: Sampling = Field(default_factory=Sampling, description="how the model generates here; unset: `model`")
    strip_thinking: bool = Field(
        False,
        description="judge reasoning models' answers only (after the last </think>), the model's and the "
        "opponents'; as `reward.strip_thinking` in training. Off: the screen reads a </think> as a control token",
    )


class LongInputTask(TaskSlice):
    max_prompt_tokens: int = Field(
        120_000, ge=64, description="longer prompts are cut in the middle (the official limit for most models)"
    )
    tokenizer: str | None = Field(
        None, description="HF tokenizer for counting prompt tokens; default: the model's own, or word pieces"
    )
    compensated: bool = Field(False, description="official option: a reply with no answer scores 0.25, not 0")
    strip_thinking: bool = Field(
        False,
        description="read the answer after a reasoning model's last </think> only; not official: the official "
        "pred.py reads the first 'The correct answer is' anywhere, inside the reasoning too",
    )


class CreativeWritingV3Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(..., description=f"your clone of {cw.UPSTREAM}: its prompts, criteria and judge prompt are read")
    limit: int | None = Field(None, ge=1, description="the first N prompts (of those with seed modifiers)")
    iterations: int = Field(
        cw.OFFICIAL_ITERATIONS, ge=1, description="pieces per prompt, each with the next seed modifier (leaderboard: 3)"
    )
    bootstrap_resamples: int = Field(2000, ge=100)
    sampling: Sampling = Field(
        default_factory=Sampling, description="how the model generates here; unset fields: official, then `model`"
    )
    sanitize: bool = Field(
        True,
        description="pass each piece through the judge sanitiser first, as every judged answer here (official: off)",
    )


class Tasks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    writingbench: WritingBenchTask | None = None
    longbench_write: LongWriteTask | None = None
    arena: ArenaTask | None = None
    longbench_v2: LongInputTask | None = None
    creative_writing_v3: CreativeWritingV3Task | None = None


# How the official scripts had the evaluated model generate (docs/scorers.md, "Generation settings").
# A field left None here is one the official script does not set: the `model` section's value applies.
OFFICIAL_SAMPLING: dict[str, Sampling] = {
    "writingbench": Sampling(temperature=0.7, top_p=0.8, top_k=20, max_tokens=16000),
    "longbench_write": Sampling(temperature=0.5, max_tokens=32768),
    "longbench_v2": Sampling(temperature=0.1, max_tokens=128),
    # no top_p officially: 1.0 is the servers' default (and no filter)
    "creative_writing_v3": Sampling(top_p=1.0, **cw.GENERATION),
}


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: GeneratorConfig
    output_dir: str
    tasks: Tasks
    official_sampling: bool = Field(
        True, description="each benchmark's official generation settings under the task's own `sampling`"
    )
    critic: CriticConfig = Field(default_factory=CriticConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    local_judge: LocalJudgeSettings = Field(default_factory=LocalJudgeSettings)


TASK_NAMES = tuple(Tasks.model_fields)
# the endpoint settings `--endpoint` keeps from the config's model endpoint: how hard to push, not where or as whom
PUSH_SETTINGS = ("timeout_s", "max_retries", "backoff_initial_s", "backoff_max_s", "max_concurrency")


def with_command_line(
    cfg: EvalConfig,
    *,
    model_path: str | None = None,
    endpoint: str | None = None,
    served_model: str | None = None,
    api_key_env: str | None = None,
    concurrency: int | None = None,
    name: str | None = None,
    tasks: list[str] | None = None,
    limit: int | None = None,
    output_dir: str | None = None,
) -> EvalConfig:
    """The config with `eval`'s command-line choices applied (lm-eval habits: `--tasks`, `--limit`).

    Raises ConfigError for choices that do not fit together or name nothing in the config."""
    model = cfg.model.model_dump()
    if model_path and endpoint:
        raise ConfigError("give --model-path or --endpoint, not both")
    if (served_model or api_key_env) and not endpoint:
        raise ConfigError("--model and --api-key-env describe the server of --endpoint; give --endpoint URL too")
    if model_path:
        model.update(transformers_model=model_path, endpoint=None)
    if endpoint:
        if not served_model:
            raise ConfigError("--endpoint needs --model NAME: the model name the server serves")
        # Another server: the config's key and extra fields stay with the config's server (a key is never
        # sent to a URL it was not configured for); only how hard to push the endpoint carries over.
        kept = {k: v for k, v in (model["endpoint"] or {}).items() if k in PUSH_SETTINGS}
        served = {**kept, "base_url": endpoint, "model": served_model, "api_key_env": api_key_env}
        model.update(endpoint=served, transformers_model=None)
        model["name"] = name or served_model
    if concurrency:
        if model["endpoint"] is None:
            raise ConfigError("--concurrency is for a served model (--endpoint); a local model batches instead")
        model["endpoint"]["max_concurrency"] = concurrency
    if name:
        model["name"] = name
    task_data = cfg.tasks.model_dump()
    if tasks:
        unknown = sorted(set(tasks) - set(TASK_NAMES))
        if unknown:
            raise ConfigError(f"--tasks: no task {', '.join(unknown)}; the tasks are {', '.join(TASK_NAMES)}")
        absent = [t for t in tasks if task_data[t] is None]
        if absent:
            raise ConfigError(f"--tasks: {', '.join(absent)} has no section under `tasks` in the config (its files)")
        task_data = {t: (v if t in tasks else None) for t, v in task_data.items()}
    if limit:
        task_data = {t: (v if v is None else {**v, "limit": limit}) for t, v in task_data.items()}
    return EvalConfig.model_validate(
        {**cfg.model_dump(), "model": model, "tasks": task_data, "output_dir": output_dir or cfg.output_dir}
    )


def _rows(t: TaskSlice) -> list[tuple[str, dict[str, Any]]]:
    """(id, row) for the first `limit` rows of each file; ids are the file's stem and the row number."""
    return [(f"{Path(path).stem}:{i}", row) for path in t.paths for i, row in enumerate(read_jsonl(path)[: t.limit])]


class EvalRun:
    def __init__(self, cfg: EvalConfig):
        self.cfg = cfg
        self.cw_bench: cw.Benchmark | None = None
        if cw_task := cfg.tasks.creative_writing_v3:  # a bad clone or setting fails here, before any call
            self.cw_bench = cw.load_benchmark(cw_task.repo)
            cw.items(self.cw_bench.prompts[: cw_task.limit], cw_task.iterations)
        self.out = Path(cfg.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = GenerationStore(self.out / "generations.sqlite")
        self.generator = Generator(cfg.model, self.store)
        critic_cfg = cfg.critic.model_copy(
            update={"cache_path": cfg.critic.cache_path or str(self.out / "critic_cache.sqlite")}
        )
        self.critic = PointwiseCritic(critic_cfg)
        judge_cfg = cfg.judge.model_copy(
            update={"cache_path": cfg.judge.cache_path or str(self.out / "judge_cache.sqlite")}
        )
        self.judge = build_judge(judge_cfg)
        judge_client = self.judge.client if isinstance(self.judge, PairwiseJudge) else None
        for client in (self.critic.client, judge_client, self.generator.client):
            if client is not None:
                client.check_credentials()
        self.generations: list[dict[str, Any]] = []
        self.judgements: list[ItemResult] = []

    def sampling(self, task: str) -> Sampling:
        """The task's own settings over the official ones (when on); what is left unset comes from `model`."""
        own: Sampling = getattr(self.cfg.tasks, task).sampling
        return own.over(OFFICIAL_SAMPLING.get(task) if self.cfg.official_sampling else None)

    async def generate(self, task: str, items: list[tuple[Any, str]]) -> list[str | None]:
        outputs = await self.generator.generate_many(
            [p for _, p in items], sampling=self.sampling(task), desc=f"{task}: generating"
        )
        self.generations += [{"task": task, "id": i, "prompt": p, "output": o} for (i, p), o in zip(items, outputs)]
        return outputs

    async def writingbench(self, t: WritingBenchTask) -> dict[str, Any]:
        """Official aggregation: the mean of all criterion scores; a domain's, the mean of its queries'
        means, by the record's own `domain1` and `domain2`; all × 10 (the leaderboard's scale). A query counts
        only with every criterion scored. With a requirement folder, its R and C scores too."""
        folder = t.requirement_folder()
        subsets = load_requirements(folder) if folder is not None else {}
        records = [r for path in t.paths for r in load_prompts(path)[: t.limit]]
        outputs = await self.generate("writingbench", [(r.id, r.prompt) for r in records])
        rubrics = [criteria_list(r.criteria) for r in records]

        async def score(r, o, rubric):  # type: ignore[no-untyped-def]
            return None if o is None else await self.critic.score(r.prompt, o, rubric)

        results = await gather_with_progress(
            (score(r, o, rubric) for r, o, rubric in zip(records, outputs, rubrics)), "writingbench: scoring"
        )
        by_domain: dict[str, dict[str, list[float]]] = {"domain1": defaultdict(list), "domain2": defaultdict(list)}
        criterion_scores: list[float] = []
        query_means: dict[Any, float] = {}
        by_name: dict[Any, dict[str, float]] = {}
        missing: Counter[str] = Counter()
        for r, rubric, res in zip(records, rubrics, results):
            per = None if res is None else res.per_criterion
            complete = per is not None and all(s is not None for s in per)
            query_mean = statistics.fmean(per) if complete else None  # type: ignore[arg-type]
            codes = [Reason.NO_OUTPUT.value] if res is None else [c.missing_code for c in res.criteria]
            missing.update(c for c in codes if c)  # per criterion left unscored
            self.judgements.append(
                WritingBenchItem(
                    id=r.id,
                    score=None if query_mean is None else 10 * query_mean,
                    criteria=None if res is None else res.criteria,
                    missing_reason=next((c for c in codes if c), None),  # the first criterion left unscored
                )
            )
            if query_mean is None:
                continue
            criterion_scores += per  # type: ignore[arg-type]
            query_means[r.id] = query_mean
            by_name[r.id] = _scores_by_name(rubric, per)  # type: ignore[arg-type]
            for level in ("domain1", "domain2"):
                if (name := getattr(r, level)) is not None:  # as the official: a record without it is not counted
                    by_domain[level][name].append(query_mean)
        result = {
            "score": 10 * statistics.fmean(criterion_scores) if criterion_scores else None,
            "n": len(query_means),
            "missing": len(records) - len(query_means),
            "missing_reasons": dict(missing),
            "per_domain": {d: 10 * statistics.fmean(v) for d, v in sorted(by_domain["domain1"].items())},
            "per_subdomain": {d: 10 * statistics.fmean(v) for d, v in sorted(by_domain["domain2"].items())},
        }
        if subsets:
            result["requirements"] = requirement_scores(subsets, query_means, by_name)
        return result

    async def _rate_quality(self, request: str, answer: str | None) -> tuple[dict[str, float] | None, str | None]:
        """The judge's six LongBench-Write ratings for one response and a reason code when there are none, asked
        as the official loop asks: until 5 tries are spent, a reply costing 1 or 2 of them (`lbw.read_quality`);
        a reply the loop takes but cannot aggregate ends the asking, left out."""
        if answer is None:
            return None, Reason.NO_OUTPUT.value
        messages = [{"role": "user", "content": lbw.quality_prompt(request, sanitize(answer))}]
        model, cache = self.cfg.critic.endpoint.model, self.critic.cache
        key = cache_key(kind="longbench_write_quality", scorer=lbw.SCORER_VERSION, model=model, messages=messages)
        if cache is not None and (hit := cache.get(key)) is not None:
            return hit, None
        spent = 0
        while spent < lbw.QUALITY_ATTEMPTS:
            try:
                res = await self.critic.client.chat(messages, **lbw.QUALITY_SAMPLING)
            except EndpointError as err:  # a failed judgement is missing, and asked again on a re-run
                return None, err.reason.value
            rated, cost = lbw.read_quality(res.text)
            if cost == 0:
                if rated is not None and cache is not None:
                    cache.put(key, rated)
                return rated, None if rated is not None else Reason.PARSE.value
            spent += cost
        return None, Reason.PARSE.value

    async def longbench_write(self, t: LongWriteTask) -> dict[str, Any]:
        pairs = _rows(t)
        if not pairs:
            raise ValueError(f"longbench_write: no items in {t.paths}")
        ids, rows = zip(*pairs)
        outputs = await self.generate("longbench_write", [(i, r["prompt"]) for i, r in zip(ids, rows)])
        # `strip_thinking` cuts before anything reads the output: the sanitiser rewrites a `</think>` marker
        answers = [o if o is None or not t.strip_thinking else answer_after_thinking(o) for o in outputs]
        qualities = await gather_with_progress(
            (
                _or_internal(self._rate_quality(r["prompt"], a), "the LongBench-Write quality call", (None, INTERNAL))
                for r, a in zip(rows, answers)
            ),
            "longbench_write: quality",
        )
        missing = Counter(code for _, code in qualities if code)
        s_l, rated, points = [], [], []
        for i, r, o, (q, code) in zip(ids, rows, answers, qualities):
            length = None if o is None else count_length(o)
            sl = None if length is None else length_score(int(r["length"]), length)
            self.judgements.append(
                LongWriteItem(
                    id=i,
                    required=r["length"],
                    length=length,
                    S_l=sl,
                    S_q=lbw.quality_score([q]) if q else None,
                    dimensions=q,
                    missing_reason=code,
                )
            )
            if sl is not None:
                s_l.append(sl)
                points.append((int(r["length"]), max(length or 0, 1)))
            if q is not None:
                rated.append(q)
        mean_l = statistics.fmean(s_l) if s_l else None
        mean_q = lbw.quality_score(rated)
        return {
            "S_l": mean_l,
            "S_q": mean_q,
            "S": (mean_l + mean_q) / 2 if mean_l is not None and mean_q is not None else None,
            "n": len(rows),
            "missing_length": len(rows) - len(s_l),
            "missing_quality": len(rows) - len(rated),
            "missing_reasons": dict(missing),
            "lengths": points,
        }

    async def arena(self, t: ArenaTask) -> dict[str, Any]:
        samples = load_jsonl(t.samples)[: t.limit]

        def answer(output: str) -> str:
            return answer_after_thinking(output) if t.strip_thinking else output

        generated = await self.generate("arena", [(s.id, s.prompt_text) for s in samples])
        outputs = [None if o is None else answer(o) for o in generated]
        me = self.cfg.model.name
        opponents: dict[str, dict[str, str]] = {"reference": {s.key: s.references[-1] for s in samples}}
        for name, folder in t.opponents.items():
            rows = read_jsonl(Path(folder) / "generations.jsonl")
            opponents[name] = {
                sample_key(r["id"]): answer(r["output"])
                for r in rows
                if r["task"] == "arena" and r["output"] is not None
            }
        jobs = [
            (s, o, name, opp[s.key])
            for s, o in zip(samples, outputs)
            for name, opp in opponents.items()
            if o is not None and s.key in opp
        ]

        # the training reward in both orders, the opponent's answer screened like the model's
        judged = await arena_reward(self.judge, t.injection).score_batch(
            [PairItem(s.prompt_text, mine, theirs, s.criteria_text, s) for s, mine, _, theirs in jobs], progress=True
        )
        by_opponent: dict[str, list[float]] = defaultdict(list)
        consistency: dict[str, list[tuple[Outcome | None, Outcome | None]]] = defaultdict(list)
        comparisons = []
        reasons: Counter[str] = Counter()
        for (s, _, name, _), pair in zip(jobs, judged):
            score = pair.reward
            if pair.missing_reason is not None:
                reasons[pair.missing_reason.value] += 1
            if score is not None:
                by_opponent[name].append(score)
                comparisons.append((me, name, score))
                if pair.judgements:  # the model's outcome in each order: the same if the judge has no position bias
                    reference_first, policy_first = pair.order_outcomes
                    consistency[name].append((reference_first, policy_first))
            verdicts = {order: j.verdict.value for order, j in zip(pair.orders, pair.judgements)}
            self.judgements.append(
                ArenaItem(
                    id=s.id,
                    opponent=name,
                    first=verdicts.get("policy_first"),
                    second=verdicts.get("reference_first"),
                    score=score,
                    missing_reason=None if pair.missing_reason is None else pair.missing_reason.value,
                    injection=ArenaInjections(pair.injection, pair.reference_injection),
                )
            )
        result: dict[str, Any] = {
            "missing": sum(reasons.values()),
            "missing_reasons": dict(reasons),
            "injections": sum(1 for p in judged if p.injection is not None or p.reference_injection is not None),
            "opponents": {},
        }
        for name, scores in by_opponent.items():
            ci = bootstrap_ci(scores, resamples=t.bootstrap_resamples)
            wins = sum(1 for x in scores if x > 0.5)
            losses = sum(1 for x in scores if x < 0.5)
            result["opponents"][name] = {
                "n": len(scores),
                "win": wins,
                "tie": len(scores) - wins - losses,
                "loss": losses,
                "win_rate": ci.estimate,
                "ci95": [ci.low, ci.high],
                "position_consistency": position_consistency(consistency[name]) if consistency[name] else None,
            }
        if len(by_opponent) >= 2:
            result["bradley_terry"] = bradley_terry(comparisons)
        return result

    async def longbench_v2(self, t: LongInputTask) -> dict[str, Any]:
        """Accuracy in percent, overall and per official group. As the official `get_pred`, only an empty reply
        (or a failed one) is missing; any other, whitespace alone too, is read and scored."""
        rows = [r for _, r in _rows(t)]
        encode, decode = self._tokenizer(t)
        prompts = [longctx.build_prompt(r, t.max_prompt_tokens, encode, decode) for r in rows]
        outputs = await self.generate("longbench_v2", [(r["_id"], p) for r, p in zip(rows, prompts)])
        credit: dict[str, list[float]] = defaultdict(list)
        for r, o in zip(rows, outputs):
            reply = "" if o is None else o
            answer = answer_after_thinking(reply) if t.strip_thinking else reply
            choice = longctx.parse_choice(answer.strip())
            value = longctx.credit(choice, r["answer"], t.compensated) if reply != "" else None
            code = Reason.NO_OUTPUT.value if value is None else None  # an empty or failed reply
            self.judgements.append(
                LongInputItem(id=r["_id"], choice=choice, answer=r["answer"], credit=value, missing_reason=code)
            )
            if value is not None:
                for group in ("overall", *longctx.groups(r)):
                    credit[group].append(value)
        overall = credit.pop("overall", [])
        return {
            "score": 100 * statistics.fmean(overall) if overall else None,
            "n": len(overall),
            "missing": len(rows) - len(overall),
            "missing_reasons": {Reason.NO_OUTPUT.value: len(rows) - len(overall)} if len(rows) > len(overall) else {},
            "groups": {g: {"score": 100 * statistics.fmean(v), "n": len(v)} for g, v in sorted(credit.items())},
        }

    def _tokenizer(self, t: LongInputTask):  # type: ignore[no-untyped-def]
        """The official counts: the model's tokenizer with its special tokens, decoded without them."""
        name = t.tokenizer or self.cfg.model.transformers_model
        if name:
            from transformers import AutoTokenizer

            from ..models import resolve_model

            tok = AutoTokenizer.from_pretrained(resolve_model(name))
            return tok.encode, (lambda ids: tok.decode(ids, skip_special_tokens=True))
        return longctx.word_tokens()

    async def creative_writing_v3(self, t: CreativeWritingV3Task) -> dict[str, Any]:
        """EQ-Bench Creative Writing v3's rubric score (0-100) as the official code computes it
        (`eval/creative_writing.py`); a piece not written or not judged is missing with its reason, never 0."""
        assert self.cw_bench is not None  # loaded with the config
        bench = self.cw_bench
        prompts = {p.id: p for p in bench.prompts[: t.limit]}
        todo = cw.items(list(prompts.values()), t.iterations)
        outputs = await self.generate(cw.TASK, [(i.id, i.prompt) for i in todo])
        pieces = [cw.clean_piece(o) for o in outputs]
        judged = await gather_with_progress(
            (
                _or_internal(
                    self._judge_piece(prompts[i.prompt_id], p, t.sanitize),
                    "the creative writing judge call",
                    (None, None, INTERNAL),
                )
                for i, p in zip(todo, pieces)
            ),
            f"{cw.TASK}: judging",
        )
        missing: Counter[str] = Counter()
        scored: list[tuple[str, float | None]] = []
        for item, output, (reply, scores, code) in zip(todo, outputs, judged):
            score = None if scores is None else cw.piece_score(scores, bench.negative)
            code = code or (Reason.PARSE.value if score is None else None)  # every value dropped
            if code:
                missing[code] += 1
            scored.append((item.prompt_id, score))
            self.judgements.append(
                CreativeWritingItem(
                    id=item.id,
                    prompt_id=item.prompt_id,
                    iteration=item.iteration,
                    seed_modifier=item.seed_modifier,
                    chars=None if output is None else len(cw.strip_reasoning(output).strip()),
                    score=None if score is None else 5 * score,
                    score_0_20=score,
                    scores=scores,
                    judge_reply=reply,
                    missing_reason=code,
                )
            )
        n = sum(1 for _, s in scored if s is not None)
        return {
            **cw.summarize(scored, resamples=t.bootstrap_resamples).as_dict(),
            "n": n,
            "missing": len(todo) - n,
            "missing_reasons": dict(missing),
            "prompts": len(prompts),
            "iterations": t.iterations,
        }

    async def _judge_piece(
        self, prompt: cw.Prompt, piece: str | None, sanitize_piece: bool
    ) -> tuple[str | None, dict[str, float] | None, str | None]:
        """(the judge's reply, the scores read from it, a reason code when there are none)."""
        if piece is None:  # no output, or shorter than the official 500 characters
            return None, None, Reason.NO_OUTPUT.value
        assert self.cw_bench is not None
        text = cw.judge_prompt(self.cw_bench, prompt, sanitize(piece) if sanitize_piece else piece)
        messages = [{"role": "user", "content": text}]
        model, cache = self.cfg.critic.endpoint.model, self.critic.cache
        key = cache_key(kind=cw.TASK, scorer=cw.SCORER_VERSION, model=model, messages=messages, **cw.JUDGE_SAMPLING)
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            reply = hit["reply"]
        else:
            try:
                reply = cw.strip_reasoning((await self.critic.client.chat(messages, **cw.JUDGE_SAMPLING)).text)
            except EndpointError as err:  # a failed judgement is missing, and asked again on a re-run
                return None, None, err.reason.value
        scores = cw.parse_scores(reply)
        if not scores:  # officially left unjudged, and judged again on the next run: so not cached
            return reply, None, Reason.PARSE.value
        if cache is not None and hit is None:
            cache.put(key, {"reply": reply})
        return reply, scores, None

    def scorers(self) -> dict[str, Any]:
        """Which scorer and which critic or judge produced each benchmark's numbers."""
        tasks, critic = self.cfg.tasks, self.cfg.critic
        out: dict[str, Any] = {}
        if tasks.writingbench:
            out["writingbench"] = critic.describe()
        if tasks.longbench_write:
            out["longbench_write"] = {
                "scorer": lbw.SCORER_VERSION,
                "model": critic.endpoint.model,
                **lbw.QUALITY_SAMPLING,
                "strip_thinking": tasks.longbench_write.strip_thinking,
            }
        if tasks.arena:
            judge = self.cfg.judge
            template = self.judge.template.fingerprint if isinstance(self.judge, PairwiseJudge) else None
            out["arena"] = {
                "scorer": "arena-1",
                "model": judge.endpoint.model if judge.backend == "llm" else None,
                "template": template,
                **judge.model_dump(mode="json", exclude={"endpoint", "cache_path"}),
            }
        if tasks.longbench_v2:
            v2 = tasks.longbench_v2
            out["longbench_v2"] = {
                "scorer": longctx.SCORER_VERSION,
                "compensated": v2.compensated,
                "max_prompt_tokens": v2.max_prompt_tokens,
                "tokenizer": v2.tokenizer or self.cfg.model.transformers_model or "word pieces",
                "strip_thinking": v2.strip_thinking,
            }
        if tasks.creative_writing_v3:
            cw_task = tasks.creative_writing_v3
            out["creative_writing_v3"] = {
                "scorer": cw.SCORER_VERSION,
                "model": critic.endpoint.model,
                "judge_sampling": cw.JUDGE_SAMPLING,
                "iterations": cw_task.iterations,
                "sanitize": cw_task.sanitize,
                **cw.source(cw_task.repo),
            }
        return out

    async def run(self) -> dict[str, Any]:
        results: dict[str, Any] = {"model": self.cfg.model.name, "scorers": self.scorers()}
        tasks = self.cfg.tasks
        for name, scorer in results["scorers"].items():  # how the answers were made is part of the number
            scorer["generation"] = self.cfg.model.with_sampling(self.sampling(name)).sampling()
        try:
            for name in TASK_NAMES:
                task = getattr(tasks, name)
                if task is not None:
                    results[name] = await getattr(self, name)(task)
        finally:
            await self.generator.aclose()
            await self.critic.aclose()
            await self.judge.aclose()
            self.store.close()
        results["cost"] = {
            "generated": self.generator.generated,
            "reused": self.generator.reused,
            "critic_calls": self.critic.client.stats.requests,
            "judge_calls": self.judge.call_stats()["calls"],
        }
        write_jsonl(self.out / "generations.jsonl", self.generations)
        write_jsonl(self.out / "judgements.jsonl", [j.to_json() for j in self.judgements])
        (self.out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
        return results


def _scores_by_name(rubric: list[Criterion] | None, scores: list[float]) -> dict[str, float]:
    """A query's criterion scores by name; a name given twice keeps its first (the official keys them by name)."""
    names = [c.name for c in rubric] if rubric else [f"criterion {i}" for i in range(len(scores))]
    out: dict[str, float] = {}
    for name, score in zip(names, scores):
        out.setdefault(name, score)
    return out


INTERNAL = Reason.INTERNAL.value


async def _or_internal(call: Awaitable[R], what: str, internal: R) -> R:
    """One judgement's boundary: `call`'s result, or `internal` (missing, reason `internal`) when it raised
    what nobody expected, so one item never ends the task (cancellation, KeyboardInterrupt, SystemExit and
    MemoryError pass: `unexpected_failure`)."""
    try:
        return await call
    except MemoryError:
        raise
    except Exception as err:
        unexpected_failure(err, logger, what)
        return internal


def arena_reward(judge: Judge, injection: InjectionPolicy) -> PairwiseReward:
    """The arena's score is the training reward in both orders, averaged (win 1, tie 0.5, loss 0; a soft judge's
    probabilities give the expected score); the opponent's answer is screened like the model's, so under
    `penalize` the side that addresses the judge loses (both: a tie), under `unknown` the pair is missing."""
    return PairwiseReward(judge, RewardConfig(position="both_average", injection=injection), screen_reference=True)


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    cfg = cfg.model_copy(update={"judge": local_judge_limits(cfg.judge, cfg.local_judge)})
    return with_local_server(
        cfg.local_judge, cfg.output_dir, lambda url: run_sync(EvalRun(point_local_endpoints(cfg, url)).run())
    )
