"""`writing-rl ablation CONFIG`: arms × seeds, small enough for one CPU.

An arm is a named set of overrides of the training config (schedule, promotion rule, dataset, ...). Every
arm is trained from every seed in `ablation.seeds` (the seed goes into `grpo.seed` and `curriculum.seed`),
then the base model and every trained model write answers to held-out prompts, scored with known-truth
metrics (the rule judge's own, and LongBench-Write's length score S_l). One seed says nothing about the
noise between runs, so scores are kept per (seed, prompt): each model's mean over seeds and prompts comes
with a 95% interval from a bootstrap that resamples seeds and prompts, and each arm's paired differences
from the base model and from the comparison arm (`dynamic`) are taken on matching (seed, prompt) pairs.

Output folder: `<arm>/seed<k>/` per training, `timings.jsonl` (seconds per training and per held-out
model, for the time-left estimate), `heldout/generations.jsonl`, `results.json`, `report/index.html`.
Re-running the same command reuses every finished training, resumes one that was interrupted after a
checkpoint, and generates only the answers that are missing (a model's cached answers count only while the
same model, by its weights' size and time, answered with the same sampling settings).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from tqdm.auto import tqdm

from . import run_layout as layout
from .config import ConfigError, _problem
from .data import Sample, load_samples
from .eval.nll_cache import cached_nll
from .eval.stats import Interval, Scores, crossed_bootstrap, paired_difference
from .eval.text_measures import MeasureName, answer_nll, uncounted_share
from .jsonl import jsonl_rows, read_jsonl, write_jsonl
from .judge.rules import RuleName, rule_score
from .models import resolve_model
from .train import TrainConfig, last_checkpoint, train
from .training.run_folder import RunFolderBusy, run_folder_busy, run_lock

Schedule = Literal["dynamic", "static", "none", "strongest"]
DONE = ("finished", "kept")  # the training states that are not trained again
BASE = "base"
DEFAULT_SCHEDULES: tuple[Schedule, ...] = ("dynamic", "static", "none", "strongest")
# what each name of the older `schedules:` list means as an arm
SCHEDULE_ARMS: dict[str, dict[str, Any]] = {
    "dynamic": {"curriculum": {"schedule": "dynamic"}},
    "static": {"curriculum": {"schedule": "static"}},
    "none": {"curriculum": {"schedule": "none"}},
    "strongest": {"curriculum": {"schedule": "fixed", "fixed_level": -1}},
}
ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RESERVED_NAMES = {BASE, "heldout", "report"}  # the base model's name and the output folder's own folders
SET_BY_ABLATION = {
    ("output_dir",): "each training's folder is <output_dir>/<arm>/seed<k>",
    ("grpo", "seed"): "the seeds come from ablation.seeds",
    ("curriculum", "seed"): "the seeds come from ablation.seeds",
}
# keys of a run's config.yaml that may differ from the plan's without making the run another one
NOT_COMPARED = ("output_dir", "audit", "judge.budget")
TIMINGS = "timings.jsonl"
BUSY_POLL_S = 30.0  # how often a training another process runs is looked at again
Seed = Annotated[int, Field(ge=0)]


class AblationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arms: dict[str, dict[str, Any]] | None = Field(
        None,
        description="name -> overrides of the training config, e.g. {dynamic_k2: {curriculum: {wins_to_promote: 2}}}",
    )
    schedules: list[Schedule] | None = Field(
        None, min_length=1, description="the older form of `arms`: each schedule is an arm of its name"
    )
    seeds: list[Seed] | None = Field(
        None, min_length=1, description="every arm is trained from each seed; default: [grpo.seed]"
    )
    compare_to: str | None = Field(
        None, description="the arm every other arm is paired against; default: dynamic if it is an arm, else the first"
    )
    static_milestones: list[int] | None = Field(
        None, description="static: steps at which every sample moves up; default: evenly spread over max_steps"
    )
    heldout: str = Field(..., description="JSONL of held-out samples (never trained on)")
    samples_per_prompt: int = Field(4, ge=1, description="answers per held-out prompt, model and seed")
    max_new_tokens: int | None = Field(None, ge=1, description="default: grpo.max_completion_length")
    temperature: float = Field(1.0, ge=0, description="held-out sampling temperature; 0 = greedy")
    metrics: list[RuleName | MeasureName] | None = Field(
        None,
        description="rule scores (0-100) and measures of the text beside them (uncounted_words, base_nll: "
        "eval/text_measures.py); default: the rule judge's rule, then length_fit",
    )
    batch_size: int = Field(32, ge=1, description="held-out generation batch")
    bootstrap_resamples: int = Field(2000, ge=100)
    keep_checkpoints: bool = Field(
        False, description="keep a finished training's checkpoint-* folders (only its final/ is used; ~1.6 GB each)"
    )
    seed: int = Field(0, ge=0, description="held-out sampling: the answers of training seed k are drawn with seed + k")

    @model_validator(mode="after")
    def _check(self) -> AblationSettings:
        if self.arms is not None and self.schedules is not None:
            raise ValueError("give `arms` or `schedules`, not both (each schedule is an arm of its name)")
        if self.arms is not None and not self.arms:
            raise ValueError("arms is empty: name at least one")
        for name in self.arms or {}:
            if not ARM_NAME.fullmatch(name) or name in RESERVED_NAMES:
                raise ValueError(
                    f"arm name {name!r}: it names a folder; use letters, digits, '_', '.' or '-', and not "
                    f"{', '.join(sorted(RESERVED_NAMES))}"
                )
        if self.seeds is not None and len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"seeds: {self.seeds} names a seed twice")
        if self.compare_to is not None and self.compare_to not in self.arm_overrides():
            raise ValueError(f"compare_to: {self.compare_to!r} is not an arm ({', '.join(self.arm_overrides())})")
        return self

    def arm_overrides(self) -> dict[str, dict[str, Any]]:
        """Every arm and its overrides; the older `schedules:` list as arms of the schedules' names."""
        if self.arms is not None:
            return self.arms
        return {s: SCHEDULE_ARMS[s] for s in (self.schedules or DEFAULT_SCHEDULES)}

    def reference_arm(self) -> str:
        arms = list(self.arm_overrides())
        return self.compare_to or ("dynamic" if "dynamic" in arms else arms[0])


class AblationConfig(TrainConfig):
    """A training config (the base every arm overrides) plus the `ablation` section."""

    ablation: AblationSettings

    @field_validator("ablation")
    @classmethod
    def _arms_fit(cls, a: AblationSettings, info: ValidationInfo) -> AblationSettings:
        """Every arm's overrides must make a valid training config: a misspelt key fails here, named with its arm,
        not hours later when that arm's turn comes."""
        if not set(TrainConfig.model_fields) <= set(info.data):
            return a  # the base config has errors of its own, reported with this one
        base = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in info.data.items()}
        for name, overrides in a.arm_overrides().items():
            arm_train_config(base, name, overrides, seed=0, output_dir="-", n_levels=2, milestones=a.static_milestones)
        return a

    @model_validator(mode="after")
    def _metrics_known(self) -> AblationConfig:
        if self.ablation.metrics is None:
            rule = [self.judge.rule.name] if self.judge.rule is not None else []
            self.ablation.metrics = list(dict.fromkeys([*rule, "length_fit"]))
        return self

    def seeds(self) -> list[int]:
        return self.ablation.seeds or [self.grpo.seed]

    def n_trainings(self) -> int:
        return len(self.ablation.arm_overrides()) * len(self.seeds())


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` laid over it, nested mappings merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _has(tree: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def even_milestones(max_steps: int, n_levels: int) -> list[int]:
    """The static schedule's default: levels rise at evenly spread steps."""
    return [max(1, round(max_steps * k / n_levels)) for k in range(1, n_levels)]


def arm_train_config(
    base: dict[str, Any],
    name: str,
    overrides: Mapping[str, Any],
    seed: int,
    output_dir: str,
    n_levels: int,
    milestones: list[int] | None = None,
) -> TrainConfig:
    """The training config of one arm and seed: the base with the arm's overrides, the seed in `grpo.seed` and
    `curriculum.seed`, and a static schedule without milestones given `milestones` (or evenly spread ones).
    A `ConfigError` naming the arm when the overrides do not make a valid training config."""
    for path, why in SET_BY_ABLATION.items():
        if _has(overrides, path):
            raise ConfigError(f"arm {name!r}: {'.'.join(path)} is set by the ablation ({why})")
    merged = _merge(base, overrides)
    merged["output_dir"] = output_dir
    for section in ("grpo", "curriculum"):
        if isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], "seed": seed}
    cur, grpo = merged.get("curriculum"), merged.get("grpo")
    if isinstance(cur, dict) and cur.get("schedule") == "static" and not cur.get("milestones"):
        steps = grpo.get("max_steps") if isinstance(grpo, dict) else None
        cur["milestones"] = milestones or even_milestones(steps if isinstance(steps, int) else 1, n_levels)
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as err:
        problems = "; ".join(_problem(TrainConfig, e) for e in err.errors())
        raise ConfigError(f"arm {name!r} does not fit the training config: {problems}") from None


@dataclass(frozen=True)
class Training:
    """One arm trained from one seed, in its own run folder."""

    arm: str
    seed: int
    config: TrainConfig

    @property
    def name(self) -> str:
        return f"{self.arm}/seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def steps(self) -> int:
        return self.config.grpo.max_steps

    def state(self) -> Literal["finished", "kept", "resume", "new"]:
        """finished: its model is in final/; kept: it ran to its end and its model is gone (deleted, or its
        results kept with --keep-results), so only its cached held-out answers can stand for it."""
        if (self.run_dir / layout.FINAL).is_dir():
            return "finished"
        if last_checkpoint(self.run_dir) is not None:
            return "resume"
        return "kept" if self.ran_to_end() else "new"

    def ran_to_end(self) -> bool:
        return ran_to_end(self.run_dir, self.steps)

    def done(self) -> bool:
        return self.state() in DONE


def ran_to_end(run_dir: Path, steps: int) -> bool:
    """The trainer's closing row (`train_runtime`, logged once training returns, whatever `logging_steps`
    is) at the last step; a line cut by a kill is skipped."""
    metrics = run_dir / layout.METRICS
    if not metrics.is_file():
        return False
    rows = (r for _, r in jsonl_rows(metrics))
    return any(isinstance(r, dict) and "train_runtime" in r and r.get("step", 0) >= steps for r in rows)


def load_arm_samples(cfg: TrainConfig, cache: dict[tuple[str, str | None], list[Sample]]) -> list[Sample]:
    """An arm's training samples, loaded once per dataset (arms may override the dataset)."""
    from .train import load_train_samples

    key = (cfg.dataset, cfg.dataset_split)
    if key not in cache:
        cache[key] = load_train_samples(cfg)
    return cache[key]


def plan_trainings(
    cfg: AblationConfig, out: Path, samples: dict[tuple[str, str | None], list[Sample]] | None = None
) -> list[Training]:
    """Every arm from every seed, seed by seed (an ablation stopped half-way has whole seeds to compare).
    Only the first training of each judge, reward and dataset audits the judge; the others would repeat it."""
    samples = {} if samples is None else samples
    base = cfg.model_dump(exclude={"ablation"})
    audited: set[str] = set()
    plan = []
    for seed in cfg.seeds():
        for arm, overrides in cfg.ablation.arm_overrides().items():
            probe = arm_train_config(base, arm, overrides, seed, str(out / arm / f"seed{seed}"), 2)
            n_levels = max(len(s.references) for s in load_arm_samples(probe, samples))
            run = arm_train_config(
                base, arm, overrides, seed, str(out / arm / f"seed{seed}"), n_levels, cfg.ablation.static_milestones
            )
            judged = json.dumps(run.model_dump(mode="json", include={"judge", "reward", "dataset", "dataset_split"}))
            if judged in audited:
                run = run.model_copy(update={"audit": run.audit.model_copy(update={"pairs": 0})})
            audited.add(judged)
            plan.append(Training(arm, seed, run))
    return plan


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(run_dir: Path, expected: TrainConfig) -> list[str]:
    """`key: there -> now` for each training setting in which the run in `run_dir` differs from `expected`."""
    path = run_dir / layout.CONFIG
    if not path.is_file():
        return []
    saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    # a setting added since the run was trained reads as its default, as `--resume` reads it; a config that no
    # longer validates is compared as written (every difference shown)
    with contextlib.suppress(ValidationError):
        saved = TrainConfig.model_validate(saved).model_dump(mode="json")
    there = _flatten(saved)
    now = _flatten(expected.model_dump(mode="json"))
    missing = object()
    return [
        f"{key}: {there.get(key, '(unset)')} -> {now.get(key, '(unset)')}"
        for key in sorted(there.keys() | now.keys())
        if there.get(key, missing) != now.get(key, missing)
        and not any(key == k or key.startswith(k + ".") for k in NOT_COMPARED)
    ]


def check_reusable(t: Training) -> None:
    """A finished, kept or interrupted run is reused only if it was trained with this arm's config now; and a run
    folder of another config is never deleted to start afresh (it may hold a kept training's only results)."""
    if not (diffs := config_differences(t.run_dir, t.config)):
        return
    raise ConfigError(
        f"{t.run_dir} holds a run of {t.name} with another config ({'; '.join(diffs[:4])}"
        f"{'; ...' if len(diffs) > 4 else ''}): delete that folder to train it again, or give another output_dir"
    )


def read_timings(out: Path) -> list[dict[str, Any]]:
    path = out / TIMINGS
    return read_jsonl(path) if path.is_file() else []


def add_timing(out: Path, row: dict[str, Any]) -> None:
    with (out / TIMINGS).open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def step_seconds(run_dir: Path, after: int = 0) -> float | None:
    """Seconds per training step in steady state, from the times `metrics.jsonl` logged (steps after `after`):
    the first step's warm-up, loading and saving are left to the per-training overhead."""
    path = run_dir / layout.METRICS
    rows = (
        [r for r in read_jsonl(path) if "reward" in r and "time" in r and r["step"] > after] if path.is_file() else []
    )
    if len(rows) < 2 or rows[-1]["step"] == rows[0]["step"]:
        return None
    return (rows[-1]["time"] - rows[0]["time"]) / (rows[-1]["step"] - rows[0]["step"])


def time_left(timings: list[dict[str, Any]], steps: int, trainings: int, models: int, processes: int = 1) -> str | None:
    """The time left for `trainings` trainings of `steps` steps in all and `models` held-out generations, at
    the measured seconds per step plus each training's measured overhead (loading, audit, first step,
    saving), the trainings shared by `processes` ablations on the folder; None before a training has been
    measured."""
    trained = [r for r in timings if r.get("kind") == "train" and r.get("steps")]
    made = [r for r in timings if r.get("kind") == "heldout"]
    if not trained:
        return None
    steady = [r for r in trained if r.get("step_seconds")]
    if steady:
        per_step = sum(r["step_seconds"] for r in steady) / len(steady)
        overhead = sum(max(0.0, r["seconds"] - r["steps"] * r["step_seconds"]) for r in steady) / len(steady)
    else:
        per_step, overhead = sum(r["seconds"] for r in trained) / sum(r["steps"] for r in trained), 0.0
    per_model = sum(r["seconds"] for r in made) / len(made) if made else None
    total = (steps * per_step + trainings * overhead) / processes + (models * per_model if per_model else 0)
    held = f" + {models} held-out models at {per_model:.0f} s" if per_model and models else ""
    unknown = " + held-out answers (not measured yet)" if models and not per_model else ""
    shared = f", the trainings shared by {processes} processes" if processes > 1 else ""
    return (
        f"time left: ~{duration(total)} ({steps} steps at {per_step:.1f} s + {trainings} trainings at "
        f"{overhead:.0f} s overhead{shared}, measured over {len(trained)} training(s){held}{unknown})"
    )


def plan_lines(cfg: AblationConfig, plan: list[Training], out: Path, heldout_prompts: int) -> list[str]:
    """What `--dry-run` prints and the ablation prints first: trainings, what is reused, the time left."""
    arms, seeds = list(cfg.ablation.arm_overrides()), cfg.seeds()
    states = {t.name: t.state() for t in plan}
    steps = sorted({t.steps for t in plan})
    todo = [t for t in plan if states[t.name] not in DONE]
    lines = [
        f"ablation: {len(arms)} arms x {len(seeds)} seeds = {len(plan)} trainings of "
        f"{'/'.join(map(str, steps))} steps ({sum(t.steps for t in plan)} steps); "
        f"{sum(s in DONE for s in states.values())} finished, "
        f"{sum(s == 'resume' for s in states.values())} "
        f"to resume, {sum(s == 'new' for s in states.values())} to train",
        *(
            f"  seed {seed}: " + ", ".join(f"{t.arm} {states[t.name]}" for t in plan if t.seed == seed)
            for seed in seeds
        ),
        f"held-out: {heldout_prompts} prompts x {cfg.ablation.samples_per_prompt} answers from "
        f"{(len(arms) + 1) * len(seeds)} models (base and each arm, per seed); paired against base and "
        f"{cfg.ablation.reference_arm()}",
    ]
    steps_left = sum(t.steps for t in todo)
    left = time_left(read_timings(out), steps_left, len(todo), missing_models(cfg, plan, out))
    return lines + [
        left
        or f"time: not measured yet ({steps_left} steps to train); the time left is printed from the first finished "
        "training on (to measure before: docs/sanity-checks.md)"
    ]


class Progress:
    """Which training of how many is running, and the time left at the seconds per step measured so far."""

    def __init__(self, plan: list[Training], out: Path, models: Callable[[], int]):
        """`models`: how many held-out models still lack answers (asked anew each time: they are answered as
        trainings end)."""
        self.plan, self.out, self.models = plan, out, models

    def say(self, i: int, t: Training, what: str) -> None:
        todo = [u for u in self.plan[i - 1 :] if not u.done()]
        left = None
        if what != "reusing":
            others = sum(run_folder_busy(u.run_dir) for u in self.plan)  # ablations training beside this one
            steps = sum(u.steps for u in todo)
            left = time_left(read_timings(self.out), steps, len(todo), self.models(), 1 + others)
        print(
            f"[ablation] training {i}/{len(self.plan)} {t.name}: {what} {t.run_dir}" + (f"; {left}" if left else ""),
            flush=True,
        )


def train_arms(
    plan: list[Training],
    out: Path,
    progress: Progress,
    keep_checkpoints: bool = False,
    after: Callable[[Training], None] | None = None,
) -> None:
    """Train what is not finished; a finished run is reused, an interrupted one resumed from its checkpoint.
    `after` runs on each training this process finished (its run folder's lock released by then).

    A training another process is running (a second `writing-rl ablation` on the same folder, which is how
    trainings run side by side) is left to it and waited for at the end, then reused or, if that process
    died, resumed here."""
    for t in plan:
        check_reusable(t)  # before any training: a stale run is found now, not hours in
    elsewhere = [(i, t) for i, t in enumerate(plan, 1) if not train_one(i, t, out, progress, keep_checkpoints, after)]
    for i, t in elsewhere:
        print(f"[ablation] waiting for the other process training {t.run_dir}", flush=True)
        while not train_one(i, t, out, progress, keep_checkpoints, after, quiet=True):
            time.sleep(BUSY_POLL_S)


def train_one(
    i: int,
    t: Training,
    out: Path,
    progress: Progress,
    keep_checkpoints: bool,
    after: Callable[[Training], None] | None = None,
    quiet: bool = False,
) -> bool:
    """Reuse, resume or train `t` holding its run folder's lock, then (if it trained) call `after`; False, with
    nothing done, if another process holds it."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(run_lock(t.run_dir))
        except RunFolderBusy:
            if not quiet:
                progress.say(i, t, "being trained by another process, back to it at the end:")
            return False
        check_reusable(t)  # again under the lock: what the other process left must be this arm's run
        trained = _train_locked(i, t, out, progress, keep_checkpoints)
    if trained and after is not None:
        after(t)
    return True


def _train_locked(i: int, t: Training, out: Path, progress: Progress, keep_checkpoints: bool) -> bool:
    """Reuse (False) or train `t` to its end (True)."""
    state = t.state()
    if state in DONE:
        progress.say(i, t, "reusing" if state == "finished" else "reusing its cached answers (model gone):")
        return False
    if state == "new" and t.run_dir.exists():
        shutil.rmtree(t.run_dir)  # a start that failed before its first checkpoint: nothing to keep
    checkpoint = last_checkpoint(t.run_dir)
    done = int(checkpoint.name.split("-")[1]) if checkpoint is not None else 0
    progress.say(i, t, f"resuming from step {done} in" if state == "resume" else "training ->")
    started = time.monotonic()
    train(t.config, resume=state == "resume")
    seconds = time.monotonic() - started
    rate = step_seconds(t.run_dir, done)
    add_timing(
        out,
        {"kind": "train", "arm": t.arm, "seed": t.seed, "steps": t.steps - done, "seconds": seconds}
        | {"step_seconds": rate},
    )
    per = f" ({rate:.1f} s a step after the first)" if rate else ""
    print(f"[ablation] {t.name}: {t.steps - done} steps trained in {duration(seconds)}{per}", flush=True)
    if not keep_checkpoints:  # finished: final/ is what the ablation uses, the optimizer state only costs disk
        for checkpoint_dir in t.run_dir.glob("checkpoint-*"):
            shutil.rmtree(checkpoint_dir)
    gc.collect()
    return True


def generate_answers(
    model_path: str,
    samples: list[Sample],
    n: int,
    max_new_tokens: int,
    temperature: float,
    batch: int,
    seed: int,
    label: str | None = None,
) -> list[list[str]]:
    """`n` answers per prompt from a transformers checkpoint, batched with left padding, seeded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": s.prompt_text}], tokenize=False, add_generation_prompt=True
        )
        for s in samples
    ]
    jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
    answers: list[list[str]] = [[] for _ in samples]
    torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}
    for start in tqdm(
        range(0, len(jobs), batch), desc=f"held-out answers ({label or Path(model_path).name})", unit="batch"
    ):
        chunk = jobs[start : start + batch]
        enc = tok([p for _, p in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **sampling)
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for (i, _), text in zip(chunk, texts):
            answers[i].append(text)
    del model
    gc.collect()
    return answers


@dataclass(frozen=True)
class HeldoutModel:
    """A model whose held-out answers are scored: the base model or an arm, for one seed."""

    name: str
    seed: int
    path: str
    kept: bool = False  # its model is gone: its cached answers are used, their fingerprint not checked


def heldout_models(cfg: AblationConfig, plan: list[Training], base: str | None = None) -> list[HeldoutModel]:
    """Per seed, the base model and every arm's final model (the base is sampled once per seed too, so every
    arm's (seed, prompt) score has a base score to pair with). `base`: its path, if not to be resolved."""
    base = base or resolve_model(cfg.model)
    return [
        m
        for seed in cfg.seeds()
        for m in [
            HeldoutModel(BASE, seed, base),
            *(
                HeldoutModel(t.arm, seed, str(t.run_dir / layout.FINAL), kept=t.state() == "kept")
                for t in plan
                if t.seed == seed
            ),
        ]
    ]


HELDOUT_ANSWERS = Path("heldout") / "generations.jsonl"
BASE_NLL_CACHE = Path("heldout") / "base_nll.jsonl"  # answers scored by `base_nll`, kept for the next report
WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")
AnswerKey = tuple[str, int, str, int]  # (model, seed, held-out sample key, answer index)


def model_fingerprint(path: str) -> str:
    """What identifies the model that answered: its folder, and the size and modification time of its
    config.json and weights files (a retrained model writes new ones). A hub id is its name alone."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return path
    files = sorted(f for f in folder.iterdir() if f.is_file() and (f.name == "config.json" or f.suffix in WEIGHTS))
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    digest = hashlib.sha256(json.dumps([str(folder.resolve()), stats]).encode()).hexdigest()[:16]
    return f"{folder.resolve()}@{digest}"


def sampling_settings(cfg: AblationConfig, seed: int) -> dict[str, Any]:
    """The settings a model's held-out answers for training seed `seed` are drawn with."""
    a = cfg.ablation
    return {
        "temperature": a.temperature,
        "max_new_tokens": a.max_new_tokens or cfg.grpo.max_completion_length,
        "seed": a.seed + seed,
    }


def _cached_rows(out: Path) -> tuple[dict[AnswerKey, dict[str, Any]], list[dict[str, Any]]]:
    """Every held-out answer written so far, by (model, seed, sample, index), whichever model wrote it; and
    the rows of the older format without a seed (kept in the file, never reused)."""
    path = out / HELDOUT_ANSWERS
    rows = read_jsonl(path) if path.is_file() else []
    keyed = {(r["model"], r["seed"], r["sample"], r["index"]): r for r in rows if "seed" in r}
    return keyed, [r for r in rows if "seed" not in r]


def _reusable(row: dict[str, Any] | None, model: str | None, sampling: dict[str, Any]) -> bool:
    """A cached answer is reused only when the same model (`None`: not checked) answered with the same
    settings; a row from before fingerprints were recorded never is."""
    return (
        row is not None and row.get("sampling") == sampling and (model is None or row.get("model_fingerprint") == model)
    )


def missing_models(cfg: AblationConfig, plan: list[Training], out: Path) -> int:
    """How many held-out models still lack answers (the base model's folder is not resolved for this: its
    answers count when their sampling settings match; an arm's when its final/ answered them, or, once its model
    is gone, when they are there at all)."""
    cached, _ = _cached_rows(out)
    names = [(BASE, seed, None) for seed in cfg.seeds()] + [(t.arm, t.seed, _answered_by(t)) for t in plan]
    have = {
        (name, seed)
        for name, seed, fingerprint in names
        for (m, s, _, _), row in cached.items()
        if (m, s) == (name, seed) and _reusable(row, fingerprint, sampling_settings(cfg, seed))
    }
    return sum(1 for name, seed, _ in names if (name, seed) not in have)


def _answered_by(t: Training) -> str | None:
    """The fingerprint `t`'s cached answers must carry: its final model's; None (any) once its model is gone;
    one no answer carries while it is not trained."""
    state = t.state()
    if state == "finished":
        return model_fingerprint(str(t.run_dir / layout.FINAL))
    return None if state == "kept" else ""


def cached_answers(
    cfg: AblationConfig, models: list[HeldoutModel], heldout: list[Sample], out: Path
) -> tuple[dict[tuple[str, int], list[list[str]]], list[HeldoutModel]]:
    """For `--report-only` and kept trainings: every model's cached answers drawn with this config's sampling
    settings, its weights not checked (a finished ablation's models may be deleted or its folder moved), and the
    models without."""
    cached, _ = _cached_rows(out)
    answers: dict[tuple[str, int], list[list[str]]] = {}
    missing = []
    for m in models:
        if (have := _answers_of(cached, cfg, m, heldout, None)) is not None:
            answers[(m.name, m.seed)] = have
        else:
            missing.append(m)
    return answers, missing


def _answers_of(
    cached: Mapping[AnswerKey, dict[str, Any]],
    cfg: AblationConfig,
    m: HeldoutModel,
    heldout: list[Sample],
    fingerprint: str | None,
) -> list[list[str]] | None:
    """`m`'s answers to every held-out prompt, if all are cached from the model `fingerprint` (None: any) with
    this config's sampling settings for its seed; else None."""
    sampling = sampling_settings(cfg, m.seed)
    rows = [[cached.get((m.name, m.seed, s.key, k)) for k in range(cfg.ablation.samples_per_prompt)] for s in heldout]
    if not all(_reusable(r, fingerprint, sampling) for rs in rows for r in rs):
        return None
    return [[r["text"] for r in rs if r is not None] for rs in rows]


def unanswered(models: list[HeldoutModel], out: Path) -> str:
    names = ", ".join(f"{m.name} seed {m.seed}" for m in models)
    return f"{out / HELDOUT_ANSWERS} lacks held-out answers drawn with this config's sampling settings for {names}"


def generate_heldout(
    cfg: AblationConfig, models: list[HeldoutModel], heldout: list[Sample], out: Path
) -> dict[tuple[str, int], list[list[str]]]:
    """Every model's answers to every held-out prompt, from the cache where the same model answered them all
    with the same settings. The file keeps every model's answers, those of models outside this plan too."""
    a = cfg.ablation
    cached, unkeyed = _cached_rows(out)
    answers: dict[tuple[str, int], list[list[str]]] = {}
    for i, m in enumerate(models, 1):
        fingerprint, sampling = None if m.kept else model_fingerprint(m.path), sampling_settings(cfg, m.seed)
        if (have_cached := _answers_of(cached, cfg, m, heldout, fingerprint)) is not None:
            answers[(m.name, m.seed)] = have_cached
            continue
        if m.kept:
            raise ConfigError(unanswered([m], out))
        print(f"[ablation] held-out answers {i}/{len(models)}: {m.name} seed {m.seed} ({m.path})", flush=True)
        started = time.monotonic()
        have = generate_answers(
            m.path,
            heldout,
            a.samples_per_prompt,
            sampling["max_new_tokens"],
            a.temperature,
            a.batch_size,
            sampling["seed"],
            label=f"{m.name} seed {m.seed}",
        )
        add_timing(out, {"kind": "heldout", "model": m.name, "seed": m.seed, "seconds": time.monotonic() - started})
        answers[(m.name, m.seed)] = have
        for key in [key for key in cached if key[:2] == (m.name, m.seed)]:  # all an older model's answers go
            del cached[key]
        for s, ts in zip(heldout, have):
            for k, t in enumerate(ts):
                cached[(m.name, m.seed, s.key, k)] = {
                    "model": m.name,
                    "seed": m.seed,
                    "sample": s.key,
                    "index": k,
                    "text": t,
                    "model_fingerprint": fingerprint,
                    "sampling": sampling,
                }
        # after each model, every cached row with this model's replaced, written to a temporary file and
        # moved in place: an interruption or a narrowed re-run (--seeds, --arms) loses no other model's answers
        write_jsonl(out / HELDOUT_ANSWERS, unkeyed + list(cached.values()))
    return answers


def score_answers(
    answers: Mapping[tuple[str, int], list[list[str]]],
    heldout: list[Sample],
    metrics: Sequence[str],
    base_model: str | None,
    nll_cache: Path,
) -> dict[str, dict[str, dict[tuple[int, str], float]]]:
    """model -> metric -> (seed, prompt) -> the mean score of that prompt's answers. `base_nll` scores every
    answer under `base_model` (resolved only then, loaded once) that `nll_cache` does not hold from an earlier
    report under the same model."""
    scores: dict[str, dict[str, dict[tuple[int, str], float]]] = {}
    cells = [
        (model, seed, s, ans) for (model, seed), by_prompt in answers.items() for s, ans in zip(heldout, by_prompt)
    ]
    for m in metrics:
        if m == "base_nll":
            if base_model is None:
                raise ValueError("base_nll needs the base model")
            path, pairs = resolve_model(base_model), [(s.prompt_text, a) for _, _, s, ans in cells for a in ans]
            nll = iter(cached_nll(path, model_fingerprint(path), pairs, nll_cache, answer_nll))
        for model, seed, s, ans in cells:
            if m == "base_nll":
                values = [next(nll) for _ in ans]
            elif m == "uncounted_words":
                values = [uncounted_share(a) for a in ans]
            else:
                values = [rule_score(m, a, s) for a in ans]
            scores.setdefault(model, {}).setdefault(m, {})[(seed, s.key)] = sum(values) / len(values)
    return scores


def _interval(ci: Interval) -> dict[str, Any]:
    return {"mean": ci.estimate, "ci95": [ci.low, ci.high]}


def summarize(
    scores: Mapping[str, Mapping[str, Scores]], compare_to: str, resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Per model and metric: the mean over seeds and prompts with its interval, each seed's mean, and (for
    an arm) the paired differences from the base model and from `compare_to`."""
    table: dict[str, dict[str, Any]] = {}
    for model, by_metric in scores.items():
        row = {}
        for m, values in by_metric.items():
            per_seed: dict[str, list[float]] = {}
            for (s, _), v in values.items():
                per_seed.setdefault(str(s), []).append(v)
            cell = {
                **_interval(crossed_bootstrap(values, resamples, seed)),
                "per_seed": {s: sum(v) / len(v) for s, v in per_seed.items()},
            }
            if model != BASE and BASE in scores:
                cell["diff_vs_base"] = _interval(paired_difference(values, scores[BASE][m], resamples, seed))
            if model not in (BASE, compare_to) and compare_to in scores:
                cell[f"diff_vs_{compare_to}"] = _interval(
                    paired_difference(values, scores[compare_to][m], resamples, seed)
                )
            row[m] = cell
        table[model] = row
    return table


def _heldout_samples(cfg: AblationConfig, plan: list[Training], samples: dict) -> list[Sample]:
    """The held-out samples; none may be a prompt some arm trains on."""
    try:
        heldout = load_samples(cfg.ablation.heldout)
    except FileNotFoundError:
        raise ConfigError(f"held-out file not found: {cfg.ablation.heldout}") from None
    train_keys = {s.prompt_text for t in plan for s in load_arm_samples(t.config, samples)}
    if overlap := [s.id for s in heldout if s.prompt_text in train_keys]:
        raise ConfigError(f"held-out prompts also in the training set: {overlap[:5]}")
    return heldout


def prepare(cfg: AblationConfig) -> tuple[list[Training], list[Sample], list[str]]:
    """The plan, the held-out samples and the plan's lines: everything `--dry-run` shows, nothing written."""
    out = Path(cfg.output_dir)
    samples: dict[tuple[str, str | None], list[Sample]] = {}
    plan = plan_trainings(cfg, out, samples)
    heldout = _heldout_samples(cfg, plan, samples)
    return plan, heldout, plan_lines(cfg, plan, out, len(heldout))


def heldout_answers_only(
    cfg: AblationConfig, answers: Mapping[tuple[str, int], list[list[str]]]
) -> dict[tuple[str, int], list[list[str]]]:
    from transformers import AutoTokenizer

    from .thinking import template_opens_thinking

    opened = template_opens_thinking(AutoTokenizer.from_pretrained(resolve_model(cfg.model)))
    return {k: [[cfg.reward.answer(t, opened)[0] for t in ts] for ts in v] for k, v in answers.items()}


@contextlib.contextmanager
def heldout_lock(out: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(out / ".heldout.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(
            "[ablation] waiting for the other process on this folder to finish its held-out answers or report",
            flush=True,
        )
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


KEPT = ("ablation.json", TIMINGS, "results.json", str(HELDOUT_ANSWERS))  # with each training's KEPT_PER_RUN
KEPT_PER_RUN = (layout.METRICS, layout.CONFIG, layout.CURRICULUM_STORE, "audit/audit.json")


def keep_results(out: Path, dest: Path) -> list[Path]:
    """Copy what `--report-only` needs to rebuild the results, and nothing of the models (kilobytes, not
    gigabytes): the cached answers, the timings, and each training's metrics, config and curriculum store (its
    promotions, for reading the schedule after the fact). A training stopped part-way is left out: without its
    checkpoint it is retrained from its start, and its metrics are of a training that never ended."""
    if dest.resolve() == out.resolve():
        raise ConfigError(f"--keep-results {dest}: that is the ablation's own folder; give another")
    runs = [run for run in sorted(out.glob("*/seed*")) if ran_to_end(run, steps=0)]  # the trainer closed it
    files = [out / f for f in KEPT] + [run / f for run in runs for f in KEPT_PER_RUN]
    kept = []
    for f in files:
        if f.is_file():
            target = dest / f.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            kept.append(target)
    return kept


def run_ablation(cfg: AblationConfig, report_only: bool = False) -> dict[str, Any]:
    """Train every arm from every seed, evaluate base + trained models on the held-out prompts, write the report.
    `report_only`: neither train nor generate; score the cached answers (the folder may hold only those and each
    training's metrics.jsonl, e.g. an ablation's results kept after its models were deleted)."""
    a = cfg.ablation
    out = Path(cfg.output_dir)
    plan, heldout, lines = prepare(cfg)
    if report_only:
        for t in plan:
            check_reusable(t)  # the answers are reported under this config: they must come from it
        answers, missing = cached_answers(cfg, heldout_models(cfg, plan, base=cfg.model), heldout, out)
        if missing:
            raise ConfigError(
                f"--report-only: {unanswered(missing, out)}; run the ablation without --report-only, or narrow it "
                "with --seeds/--arms"
            )
        return write_results(cfg, plan, heldout, answers)
    busy = {(t.arm, t.seed) for t in plan if run_folder_busy(t.run_dir)}  # maybe still saving its model
    kept = [m for m in heldout_models(cfg, plan) if m.kept and (m.name, m.seed) not in busy]
    if missing := cached_answers(cfg, kept, heldout, out)[1]:  # found now, not after hours of training
        raise ConfigError(
            f"{unanswered(missing, out)}: these trainings ran to their end but their models (final/) are gone; "
            "delete their folders to train them again"
        )
    for line in lines:
        print(f"[ablation] {line}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2), encoding="utf-8")

    def answer(t: Training) -> None:
        """A training's held-out answers (and its seed's base model's) as soon as it ends: an ablation stopped
        later keeps them, and they do not wait for the last training."""
        with heldout_lock(out):
            generate_heldout(cfg, [m for m in heldout_models(cfg, [t]) if m.seed == t.seed], heldout, out)

    progress = Progress(plan, out, lambda: missing_models(cfg, plan, out))
    train_arms(plan, out, progress, a.keep_checkpoints, answer)
    # processes sharing the folder end together: one at a time, each after the first finds the answers and
    # their base-model scores cached, and none reads a results.json another is writing
    with heldout_lock(out):
        return write_results(cfg, plan, heldout, generate_heldout(cfg, heldout_models(cfg, plan), heldout, out))


def write_results(
    cfg: AblationConfig, plan: list[Training], heldout: list[Sample], answers: dict[tuple[str, int], list[list[str]]]
) -> dict[str, Any]:
    """Score the held-out answers, pair them, and write results.json and the report into the output folder."""
    from .eval.ablation_report import write_ablation_report

    a, out = cfg.ablation, Path(cfg.output_dir)
    assert a.metrics is not None
    if cfg.reward.strip_thinking:  # scored as the training judge read them: the answer after the thinking
        answers = heldout_answers_only(cfg, answers)
    scores = score_answers(answers, heldout, a.metrics, cfg.model, out / BASE_NLL_CACHE)
    compare_to = a.reference_arm()
    results: dict[str, Any] = {
        "models": summarize(scores, compare_to, a.bootstrap_resamples, a.seed),
        "per_prompt": {
            model: {m: {str(s): [v[(s, h.key)] for h in heldout] for s in cfg.seeds()} for m, v in by.items()}
            for model, by in scores.items()
        },
        "heldout_samples": [h.key for h in heldout],
        "arms": a.arm_overrides(),
        "seeds": cfg.seeds(),
        "compare_to": compare_to,
        "metrics": a.metrics,
        "interval": "95% percentile bootstrap drawing seeds and prompts with replacement; differences paired by "
        "(seed, prompt)",
        "heldout_prompts": len(heldout),
        "samples_per_prompt": a.samples_per_prompt,
        "runs": {t.name: str(t.run_dir) for t in plan if (t.run_dir / layout.METRICS).is_file()},
        "timings": read_timings(out),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    results["report"] = str(write_ablation_report(out, results))
    return results


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0,1,2` as [0, 1, 2]."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text}: give whole numbers separated by commas, e.g. --seeds 0,1,2") from None
    if not seeds:
        raise ConfigError("--seeds: give at least one seed, e.g. --seeds 0,1,2")
    return seeds


def narrowed(
    cfg: AblationConfig, seeds: Sequence[int] | None, arms: Sequence[str] | None, compare_to: str | None = None
) -> AblationConfig:
    """The config with the command line's `--seeds`, `--arms` (a subset of the config's arms) and `--compare-to`
    (another arm to pair every arm against, e.g. to ask whether any rule beats `none`) applied."""
    a = cfg.ablation
    update: dict[str, Any] = {}
    if seeds is not None:
        update["seeds"] = list(seeds)
    if arms is not None:
        known = a.arm_overrides()
        if unknown := [name for name in arms if name not in known]:
            raise ConfigError(f"--arms: {', '.join(unknown)} not in the config's arms ({', '.join(known)})")
        update.update(arms={name: known[name] for name in arms}, schedules=None)
        if a.compare_to not in arms:
            update["compare_to"] = None
    if compare_to is not None:
        update["compare_to"] = compare_to
    try:
        settings = AblationSettings.model_validate({**a.model_dump(), **update})
    except ValidationError as err:
        raise ConfigError("; ".join(_problem(AblationSettings, e) for e in err.errors())) from None
    return cfg.model_copy(update={"ablation": settings})


def results_table(results: dict[str, Any]) -> str:
    """Markdown table: each model's held-out mean [95% CI], and its paired differences from the base model and
    from the comparison arm."""
    from .eval.ablation_report import interval_text

    metrics, ref = results["metrics"], results.get("compare_to")
    heads = [f"{m} | Δ vs base" + (f" | Δ vs {ref}" if ref else "") for m in metrics]
    width = 1 + len(metrics) * (3 if ref else 2)
    lines = ["| model | " + " | ".join(heads) + " |", "|" + " --- |" * width]
    for model, row in results["models"].items():
        cells = []
        for m in metrics:
            r = row[m]
            cells += [interval_text(r, False, m), interval_text(r.get("diff_vs_base"), True, m)]
            if ref:
                cells.append(interval_text(r.get(f"diff_vs_{ref}"), True, m))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    seeds = results.get("seeds")
    if seeds:
        lines.append(f"means over {len(seeds)} seed(s) x {results['heldout_prompts']} prompts, 95% intervals; Δ paired")
    return "\n".join(lines)
