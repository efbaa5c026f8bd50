"""TRL GRPO adapter: the pairwise reward against each prompt's current reference, with the
dynamic curriculum decided once per generation batch from whole GRPO groups, on TRL's public API only
(or, under `reward.kind: pointwise`, each answer scored alone, with no curriculum to move).

How the pieces meet:
- `WritingReward` is a plain TRL reward function. TRL calls it once per generation batch on every rank at
  the same point, with `trainer_state` and `log_metric` among its keywords (`trl_version.py` says since when).
  Each rank scores its slice of completions against the reference level that every rank holds in the same
  in-memory table and builds one `RolloutRecord` per completion. Unknown verdicts return None, which TRL
  turns into NaN and leaves out of the group baseline.
- Then, still inside that call, `WritingReward.settle` sends the records to rank 0 only (they carry
  completions and judge texts of up to 20,000 characters each, and only rank 0 writes them); rank 0 applies
  the promotion rule to each whole group, writes the store and the rollout records, computes the step's
  metrics and watches for a dead judge, and broadcasts the new levels, those metrics and the guard's
  decision: every rank holds identical levels, logs identical metrics through `log_metric`, and stops
  together. The judge counters are totals over all ranks (`rank_metrics`, a few numbers all-gathered), so
  every rank also keeps the judge budget alike. Only the main process holds the store.
- `CurriculumCheckpointCallback` saves the curriculum snapshot inside each checkpoint folder, so a
  resume restores exactly the state that checkpoint saw.
- `UnknownRewardGuard` stops training when the judge has given no reward for several generation
  rounds in a row (a dead judge), naming its URL and last error; before a step counts, `OutageWait`
  (`judge/outage.py`) waits for a judge that stopped answering and judges the step again if it comes back.
- `PreemptionCallback` (`preemption.py`) ends the run at the end of a step, with a checkpoint, on SIGTERM/SIGUSR1.
- `JudgeSpendCallback` keeps what the judge cost (`writing_rl.spend`, counted over all ranks in
  `WritingReward.settle`) in every checkpoint, and stops training with a checkpoint at the end of the step
  in which the spend reaches `judge.budget`.
- `GenerationClock` marks where each optimizer step (or gradient-accumulation micro-step) begins, so the
  reward function can log `time/generation_s` without reaching into the trainer.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from transformers import TrainerCallback

from ..curriculum import Curriculum
from ..data import Sample
from ..judge.outage import OutageWait
from ..outcome import Outcome
from ..pointwise import PointReward, PointwiseReward
from ..reward import ExtraRewards, PairItem, PairReward, PairwiseReward
from ..rollouts import RolloutRecord, RolloutWriter
from ..run_layout import CURRICULUM_SNAPSHOT, trained_step
from ..spend import SPEND_FILE, JudgeSpend, budget_problem
from ..step_metrics import step_metrics
from .rank_metrics import Counted, broadcast_from_main, gather_judge_metrics, gather_to_main, judge_counters

LogMetric = Callable[[str, float], None]


class Ranks(Protocol):
    """Where this process stands among the training processes (accelerate's `PartialState` is one)."""

    @property
    def process_index(self) -> int: ...

    @property
    def num_processes(self) -> int: ...

    @property
    def is_main_process(self) -> bool: ...


@dataclass(frozen=True)
class OneProcess:
    """A world of one: the reward function used outside a distributed launch (tests, benchmarks)."""

    process_index: int = 0
    num_processes: int = 1
    is_main_process: bool = True


def completion_text(completion: Any) -> str:
    """TRL passes plain strings, or a list of chat messages for conversational prompts."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if isinstance(m, dict))


class GenerationClock(TrainerCallback):
    """Marks the start of every optimizer step and micro-step: TRL generates right after one of these
    (in the step's `training_step`), so the time from the mark to the reward call is the generation,
    plus any log-probability pass TRL runs before scoring (with `beta` > 0, or off-policy settings)."""

    def __init__(self) -> None:
        self.mark: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.mark = time.perf_counter()
        return control

    def on_substep_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.mark = time.perf_counter()
        return control


class JudgeUnavailable(RuntimeError):
    """Training stopped because the judge gave no reward for several steps in a row."""

    exit_code = 1  # the run failed; its summary says how far it got


class UnknownRewardGuard:
    """Counts steps in which no completion got a reward; at `limit` in a row, stops training with the
    judge's address and its last error, instead of spending steps that teach nothing (0: never stops)."""

    def __init__(self, limit: int, judge: str):
        self.limit = limit
        self.judge = judge
        self.streak = 0

    def problem(self, records: Sequence[RolloutRecord]) -> str | None:
        """Count this step; the reason to stop training, once the streak reaches the limit."""
        if not records or any(r.reward is not None for r in records):
            self.streak = 0
            return None
        self.streak += 1
        if self.limit and self.streak >= self.limit:
            return (
                f"stopped after {self.streak} step(s) in a row without a single reward from the judge at "
                f"{self.judge}; last error: {last_error(records)}. Check it with `writing-rl check CONFIG`"
            )
        return None


def last_error(records: Sequence[RolloutRecord]) -> str:
    """The most recent judge error in these rollout records, on one line."""
    for r in reversed(records):
        for j in reversed(r.judgements):
            if j.error:
                return " ".join(j.error.split())[:300]
        if r.missing_detail:
            return r.missing_detail
        if r.missing_reason is not None:
            return r.missing_reason.value
    return "none recorded"


@dataclass
class Settled:
    """What rank 0 sends every rank after a generation batch: small, whatever the batch size."""

    levels: dict[str, int]
    metrics: dict[str, float] = field(default_factory=dict)
    stop: str | None = None  # why training stops (a dead judge), when it does
    failed: str | None = None  # rank 0 could not settle the batch (a full disk, a store error): every rank stops


class RankZeroFailed(RuntimeError):
    """Rank 0 failed while settling a batch; the other ranks stop too instead of waiting for it until the
    collective's timeout. Rank 0 itself raises its own exception, with its traceback."""

    exit_code = 1  # the run failed; rank 0's own error is above it


def numbered_across_ranks(records: list[RolloutRecord]) -> list[RolloutRecord]:
    """Each sample's completions numbered 0.. over the whole gathered batch (rank 0's first): a rank numbers
    only its own slice, so a group split over ranks would otherwise repeat an index."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for r in records:
        out.append(r if r.index == seen[r.sample] else r.model_copy(update={"index": seen[r.sample]}))
        seen[r.sample] += 1
    return out


class WritingReward:
    """Pairwise judge reward (plus optional length and repetition terms) as a TRL reward function, which
    also moves the curriculum, writes the rollout records and logs the writing-rl metrics (see the module
    docstring). Outside a trainer, `score` alone judges a batch and returns its records."""

    def __init__(
        self,
        samples: Sequence[Sample],
        reward: PairwiseReward | PointwiseReward,
        curriculum: Curriculum,
        length_weight: float = 0.0,
        repetition_weight: float = 0.0,
        max_text_chars: int = 20_000,
        outage: OutageWait | None = None,
        *,
        ranks: Ranks = OneProcess(),
        rollout_writer: RolloutWriter | None = None,
        unknown_guard: UnknownRewardGuard | None = None,
        judge_spend: JudgeSpend | None = None,
        clock: GenerationClock | None = None,
    ):
        self.__name__ = "writing_rl"  # the name TRL logs this reward function's rewards under
        self.samples = {s.key: s for s in samples}
        self.reward = reward
        self.curriculum = curriculum
        self.extras = ExtraRewards(length_weight=length_weight, repetition_weight=repetition_weight)
        self.max_text_chars = max_text_chars
        self.outage = outage  # waits out a judge that is restarting, then judges the batch again
        self.ranks = ranks
        self.rollout_writer = rollout_writer  # rank 0's; None on the other ranks
        self.unknown_guard = unknown_guard
        self.judge_spend = judge_spend if judge_spend is not None else JudgeSpend()
        self.clock = clock
        self.thinking_opened = False  # the policy's chat template opens <think> in the prompt (set by `train`)
        self.levels: dict[str, int] | None = None  # the dynamic schedule's, identical on every rank once set
        self.last_judge_s = 0.0
        self.judge_totals: dict[str, float] | None = None  # this rank's judge counters at the last batch

    def level_of(self, sample: Sample, step: int) -> int:
        if self.curriculum.config.schedule == "dynamic":
            return min((self.levels or {}).get(sample.key, 0), len(sample.references) - 1)
        return self.curriculum.level(sample, step)

    def __call__(
        self,
        prompts: list,
        completions: list,
        sample_key: list[str],
        trainer_state: Any = None,
        log_metric: LogMetric | None = None,
        **_: Any,
    ) -> list[float | None]:
        called = time.perf_counter()
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        if self.levels is None:  # the first batch: every rank takes rank 0's levels (restored ones on a resume)
            self.levels = self._levels_from_main(self.curriculum.store.levels() if self.ranks.is_main_process else None)
        rewards, records = self.score(completions, sample_key, step)
        local = {"time/judge_s": self.last_judge_s}
        if self.clock is not None and self.clock.mark is not None:
            local["time/generation_s"] = called - self.clock.mark
        self.settle(records, step, local, log_metric)
        return rewards

    def score(
        self, completions: Sequence[Any], sample_key: Sequence[str], step: int
    ) -> tuple[list[float | None], list[RolloutRecord]]:
        """Judge this rank's completions (`step`: TRL's `global_step`, the steps completed before them); their
        rewards, and one rollout record each, numbered by the step they train (`run_layout`'s step numbering).
        Talks to no other rank."""
        samples = [self.samples[k] for k in sample_key]
        levels = [self.level_of(s, step) for s in samples]
        texts, cut = zip(*(self.reward.config.answer(completion_text(c), self.thinking_opened) for c in completions))
        items = [
            PairItem(s.prompt_text, t, s.references[lvl], s.criteria_text, s)
            for s, t, lvl in zip(samples, texts, levels)
        ]
        started = time.perf_counter()

        def judged() -> list[PairReward | PointReward]:
            return list(self.reward.score_batch_sync(items))

        results = judged()
        if self.outage is not None:
            results = self.outage.after(results, judged)
        self.last_judge_s = time.perf_counter() - started
        rewards: list[float | None] = []
        records: list[RolloutRecord] = []
        seen: dict[str, int] = defaultdict(int)
        for s, text, thinking, lvl, r in zip(samples, texts, cut, levels, results):
            record = RolloutRecord.of_pair(
                step=trained_step(step),
                sample=s,
                index=seen[s.key],
                level=lvl,
                text=text,
                pair=r,
                extras=self.extras,
                max_text_chars=self.max_text_chars,
                thinking_chars=thinking,
            )
            rewards.append(record.reward)
            records.append(record)
            seen[s.key] += 1
        return rewards, records

    def settle(
        self, records: list[RolloutRecord], step: int, local: dict[str, float], log_metric: LogMetric | None
    ) -> None:
        """After every rank scored its slice (every rank calls this, at the same point): move the
        curriculum on rank 0, share its levels, metrics and stop decision, count the judge spend, log.

        `local` holds this rank's timings (`time/judge_s`, and `time/generation_s` when known)."""
        world = self.ranks.num_processes
        totals = judge_counters(self.judge)
        previous = self.judge_totals or dict.fromkeys(totals, 0.0)
        self.judge_totals = totals
        counts = {name: totals[name] - previous[name] for name in totals} | {"time/judge_s": local["time/judge_s"]}
        batch = gather_judge_metrics(counts, world)  # totals over the ranks, the same on every rank
        self.judge_spend.add_batch(batch)  # so every rank keeps the budget alike
        everyone = gather_to_main(records, world)  # None on every rank but 0
        failure: Exception | None = None
        decided: Settled | None = None
        if everyone is not None:
            try:
                decided = self._decide(everyone, step)
            except Exception as err:  # the others wait in the broadcast: tell them, then raise it here
                failure = err
                decided = Settled(self.levels or {}, failed=f"{type(err).__name__}: {err}")
        settled = broadcast_from_main(decided, world)
        if failure is not None:
            raise failure
        if settled.failed is not None:
            raise RankZeroFailed(f"rank 0 failed while settling step {step}: {settled.failed}")
        self.levels = settled.levels
        if log_metric is not None:
            metrics = batch | settled.metrics
            if "time/generation_s" in local:  # this rank's; TRL logs the mean over the ranks
                metrics["time/generation_s"] = local["time/generation_s"]
            for name in sorted(metrics):  # same names, same order on every rank: TRL gathers them by name
                log_metric(name, metrics[name])
        if settled.stop is not None:
            raise JudgeUnavailable(settled.stop)

    def _decide(self, records: list[RolloutRecord], step: int) -> Settled:
        """Rank 0, with every rank's records: promotions from whole groups, the store, rollout records.
        A pointwise reward has no outcomes: the curriculum is neither told nor logged."""
        records = numbered_across_ranks(records)
        if self.rollout_writer is not None:
            self.rollout_writer.write(records)
        metrics = step_metrics(records)
        if not isinstance(self.reward, PointwiseReward):
            metrics |= self._promote(records, step)
        stop = None if self.unknown_guard is None else self.unknown_guard.problem(records)
        return Settled(self.levels or {}, metrics, stop)

    def _promote(self, records: list[RolloutRecord], step: int) -> dict[str, float]:
        """Each whole group's outcomes to the curriculum; the new levels, and the curriculum's metrics."""
        groups: dict[tuple[str, int], list[Outcome | None]] = defaultdict(list)
        for r in records:
            groups[(r.sample, r.level)].append(r.outcome)
        promotions = 0
        for (key, level), outcomes in groups.items():
            promotions += self.curriculum.record(self.samples[key], level, outcomes, step).promoted
        self.levels = self.curriculum.store.levels()
        levels = [self.level_of(s, step + 1) for s in self.samples.values()]
        return {"curriculum/promotions": float(promotions), "curriculum/mean_level": sum(levels) / max(len(levels), 1)}

    def _levels_from_main(self, levels: dict[str, int] | None) -> dict[str, int]:
        return dict(broadcast_from_main(levels, self.ranks.num_processes) or {})

    @property
    def judge(self) -> Counted:
        return self.reward.judge


class JudgeSpendCallback(TrainerCallback):
    """Writes the judge spend into every checkpoint folder and the run folder (main process), and stops
    training when it reaches `judge.budget`: at the end of that optimizer step, with a checkpoint of it.

    Listed before `CurriculumCheckpointCallback`: the curriculum snapshot marks a checkpoint complete
    (`train.last_checkpoint`), so a checkpoint that has one also has its spend."""

    def __init__(self, spend: JudgeSpend, budget: Any, price: Any = None):
        self.spend = spend
        self.budget = budget
        self.price = price
        self.stopped: str | None = None  # why the budget stopped training, when it did

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.stopped is None and state.global_step < state.max_steps:  # the last step ends the run anyway
            self.stopped = budget_problem(self.spend, self.budget, self.price)
            if self.stopped is not None:
                control.should_save = control.should_training_stop = control.should_log = True
        return control

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                self.spend.save(ckpt / SPEND_FILE, self.price)
            self.spend.save(Path(args.output_dir) / SPEND_FILE, self.price)
        return control

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.is_world_process_zero:
            self.spend.save(Path(args.output_dir) / SPEND_FILE, self.price)
        return control


class CurriculumCheckpointCallback(TrainerCallback):
    """Saves the curriculum snapshot into every checkpoint folder (main process only)."""

    def __init__(self, curriculum: Curriculum):
        self.curriculum = curriculum

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                self.curriculum.store.save_snapshot(ckpt / CURRICULUM_SNAPSHOT)
        return control


class MetricsJsonlCallback(TrainerCallback):
    """Every log line also goes to a local metrics.jsonl, needing neither TensorBoard nor W&B."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if state.is_world_process_zero and logs:
            record = {"step": state.global_step, "time": time.time(), **logs}
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        return control
