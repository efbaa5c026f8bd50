"""TRL GRPO adapter: the pairwise reward against each prompt's current reference, with the
dynamic curriculum decided once per generation batch from whole GRPO groups.

How the pieces meet:
- `WritingReward` is a plain TRL reward function. Each rank scores its slice of completions
  against the reference level that every rank holds in the same in-memory table, and keeps one
  rollout record per completion (sample, level, judgements, outcome, reward components, what the
  injection screen found, why a reward is missing). Unknown verdicts return None, which TRL turns
  into NaN and leaves out of the group baseline.
- `WritingRLGRPOTrainer._calculate_rewards` runs right after TRL gathers the rewards: it gathers the
  records of all ranks, lets the main process apply the promotion rule to each whole group, write
  the store and the rollout records, and broadcasts the new levels, so every rank sees identical levels.
  The judge metrics it logs are totals over all ranks (`rank_metrics`); only the main process holds the store.
- `CurriculumCheckpointCallback` saves the curriculum snapshot inside each checkpoint folder, so a
  resume restores exactly the state that checkpoint saw.
- `UnknownRewardGuard` stops training when the judge has given no reward for several generation
  rounds in a row (a dead judge), naming its URL and last error; before a step counts, `OutageWait`
  (`judge/outage.py`) waits for a judge that stopped answering and judges the step again if it comes back.
- `PreemptionCallback` (`preemption.py`) ends the run at the end of a step, with a checkpoint, on SIGTERM/SIGUSR1.
- `JudgeSpendCallback` keeps what the judge cost (`writing_rl.spend`, counted over all ranks in
  `_calculate_rewards`) in every checkpoint, and stops training with a checkpoint at the end of the step
  in which the spend reaches `judge.budget`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate.utils import broadcast_object_list, gather_object
from transformers import TrainerCallback
from trl import GRPOTrainer

from ..curriculum import Curriculum
from ..data import Sample
from ..judge.judgement import Judge
from ..judge.outage import OutageWait
from ..reasons import ALL_REASONS
from ..reward import ExtraRewards, PairReward, PairwiseReward
from ..rollouts import RolloutWriter, capped
from ..spend import SPEND_FILE, JudgeSpend, budget_problem
from .rank_metrics import gather_judge_metrics, judge_counters

CURRICULUM_SNAPSHOT = "curriculum_snapshot.json"


def completion_text(completion: Any) -> str:
    """TRL passes plain strings, or a list of chat messages for conversational prompts."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if isinstance(m, dict))


class WritingReward:
    """Pairwise judge reward (plus optional length and repetition terms) as a TRL reward function.

    Every call also keeps one rollout record per completion (see `writing_rl.rollouts`); the trainer
    gathers them, updates the curriculum from them and writes them to the run folder.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        reward: PairwiseReward,
        curriculum: Curriculum,
        length_weight: float = 0.0,
        repetition_weight: float = 0.0,
        max_text_chars: int = 20_000,
        outage: OutageWait | None = None,
    ):
        self.__name__ = "writing_rl"
        self.samples = {s.key: s for s in samples}
        self.reward = reward
        self.curriculum = curriculum
        self.extras = ExtraRewards(length_weight=length_weight, repetition_weight=repetition_weight)
        self.max_text_chars = max_text_chars
        self.outage = outage  # waits out a judge that is restarting, then judges the batch again
        self.levels: dict[str, int] = {}  # dynamic schedule: identical on every rank
        self.pending: list[dict[str, Any]] = []
        self.last_judge_s = 0.0

    def level_of(self, sample: Sample, step: int) -> int:
        if self.curriculum.config.schedule == "dynamic":
            return min(self.levels.get(sample.key, 0), len(sample.references) - 1)
        return self.curriculum.level(sample, step)

    def __call__(
        self, prompts: list, completions: list, sample_key: list[str], trainer_state: Any = None, **_: Any
    ) -> list[float | None]:
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        samples = [self.samples[k] for k in sample_key]
        levels = [self.level_of(s, step) for s in samples]
        texts = [completion_text(c) for c in completions]
        items = [(s.prompt_text, t, s.references[lvl], s.criteria_text, s) for s, t, lvl in zip(samples, texts, levels)]
        started = time.perf_counter()
        results = self.reward.score_batch_sync(items)
        if self.outage is not None:
            results = self.outage.after(results, lambda: self.reward.score_batch_sync(items))
        self.last_judge_s = time.perf_counter() - started
        rewards: list[float | None] = []
        seen: dict[str, int] = defaultdict(int)
        for s, text, lvl, r in zip(samples, texts, levels, results):
            parts = {"pairwise": r.reward, **self.extras.terms(s, text)}
            total = None if r.reward is None else sum(v for v in parts.values() if v is not None)
            rewards.append(total)
            self.pending.append(self._record(step + 1, s, seen[s.key], lvl, text, r, parts, total))
            seen[s.key] += 1
        return rewards

    def _record(
        self, step: int, s: Sample, index: int, level: int, text: str, r: PairReward, parts: dict, total: float | None
    ) -> dict[str, Any]:
        sources = getattr(s, "reference_sources", None)
        source = sources[level] if isinstance(sources, list) and level < len(sources) else f"reference {level}"
        cap = self.max_text_chars
        return {
            "step": step,  # the training step these completions train, numbered as in metrics.jsonl
            "sample": s.key,
            "sample_id": s.id,
            "index": index,
            "level": level,
            "n_levels": len(s.references),
            "reference_source": source,
            "completion": capped(text, cap),
            "judgements": [
                {
                    "order": order,
                    "verdict": j.verdict.value,
                    "probs": None if j.probs is None else vars(j.probs),
                    "text": capped(j.text, cap),
                    "error": j.error,
                    "reason": None if j.reason is None else j.reason.value,
                    "truncated": None if j.truncated is None else list(j.truncated),
                    "cached": j.cached,
                }
                for order, j in zip(r.orders, r.judgements)
            ],
            "outcome": r.outcome,
            "reward": total,
            "components": parts,
            "injection": None if r.injection is None else r.injection.to_json(),
            "missing_reason": None if r.missing_reason is None else r.missing_reason.value,
            "missing_detail": r.missing_detail,
        }

    def pop_pending(self) -> list[dict[str, Any]]:
        out, self.pending = self.pending, []
        return out

    @property
    def judge(self) -> Judge:
        return self.reward.judge


class JudgeUnavailable(RuntimeError):
    """Training stopped because the judge gave no reward for several steps in a row."""


class UnknownRewardGuard:
    """Counts steps in which no completion got a reward; at `limit` in a row, stops training with the
    judge's address and its last error, instead of spending steps that teach nothing (0: never stops)."""

    def __init__(self, limit: int, judge: str):
        self.limit = limit
        self.judge = judge
        self.streak = 0

    def observe(self, records: Sequence[dict[str, Any]]) -> None:
        if not records or any(r["outcome"] is not None for r in records):
            self.streak = 0
            return
        self.streak += 1
        if self.limit and self.streak >= self.limit:
            raise JudgeUnavailable(
                f"stopped after {self.streak} step(s) in a row without a single reward from the judge at "
                f"{self.judge}; last error: {last_error(records)}. Check it with `writing-rl check CONFIG`"
            )


def last_error(records: Sequence[dict[str, Any]]) -> str:
    """The most recent judge error in these rollout records, on one line."""
    for r in reversed(records):
        for j in reversed(r["judgements"]):
            if j.get("error"):
                return " ".join(str(j["error"]).split())[:300]
        if r.get("missing_detail") or r.get("missing_reason"):
            return str(r.get("missing_detail") or r.get("missing_reason"))
    return "none recorded"


class WritingRLGRPOTrainer(GRPOTrainer):
    """GRPOTrainer plus the curriculum update and writing-rl metrics; everything else is TRL's."""

    def __init__(
        self,
        *args: Any,
        writing_reward: WritingReward,
        rollout_writer: RolloutWriter | None = None,
        unknown_guard: UnknownRewardGuard | None = None,
        judge_spend: JudgeSpend | None = None,
        **kwargs: Any,
    ):
        self.writing_reward = writing_reward
        self.rollout_writer = rollout_writer
        self.unknown_guard = unknown_guard
        self.judge_spend = judge_spend if judge_spend is not None else JudgeSpend()
        super().__init__(*args, **kwargs)
        self._sync_levels(self._initial_levels())

    # -- curriculum -------------------------------------------------------------------------
    def _initial_levels(self) -> dict[str, int] | None:
        return self.writing_reward.curriculum.store.levels() if self.accelerator.is_main_process else None

    def _sync_levels(self, levels: dict[str, int] | None) -> None:
        box = [levels]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(box, from_process=0)
        self.writing_reward.levels = dict(box[0] or {})

    def _update_curriculum(self) -> None:
        wr = self.writing_reward
        local = wr.pop_pending()
        records = gather_object(local) if self.accelerator.num_processes > 1 else local
        step = self.state.global_step
        promotions = 0
        new_levels: dict[str, int] | None = None
        if self.accelerator.is_main_process:
            groups: dict[tuple[str, int], list[str | None]] = defaultdict(list)
            for r in records:
                groups[(r["sample"], r["level"])].append(r["outcome"])
            for (key, level), outcomes in groups.items():
                sample = wr.samples[key]
                new = wr.curriculum.record(sample, level, outcomes, step)
                promotions += wr.curriculum.config.schedule == "dynamic" and new > level
            new_levels = wr.curriculum.store.levels()
            if self.rollout_writer is not None:
                self.rollout_writer.write(records)
        self._sync_levels(new_levels)
        outcomes = [r["outcome"] for r in records]
        n = max(len(outcomes), 1)
        metrics = self._metrics["train"]
        for name in ("win", "tie", "loss"):
            metrics[f"judge/{name}_rate"].append(outcomes.count(name) / n)
        metrics["judge/unknown_rate"].append(outcomes.count(None) / n)
        metrics["judge/injection_rate"].append(sum(r.get("injection") is not None for r in records) / n)
        metrics["judge/truncated_rate"].append(
            sum(any(j.get("truncated") and any(j["truncated"]) for j in r["judgements"]) for r in records) / n
        )
        reasons = [r.get("missing_reason") for r in records]
        for code in ALL_REASONS:  # every code every step, so each is one steady curve
            metrics[f"judge/missing/{code}"].append(float(reasons.count(code)))
        known = [r for r in records if r["reward"] is not None]
        for part in sorted({k for r in known for k in r["components"]}):
            values = [r["components"].get(part, 0.0) for r in known]
            metrics[f"reward/{part}"].append(sum(values) / len(values))
        metrics["curriculum/promotions"].append(float(promotions))
        levels = [wr.level_of(s, step + 1) for s in wr.samples.values()]
        metrics["curriculum/mean_level"].append(sum(levels) / max(len(levels), 1))
        if self.unknown_guard is not None:  # every rank holds all records, so every rank stops together
            self.unknown_guard.observe(records)

    # -- hooks into TRL ---------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[override]
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        wr = self.writing_reward
        totals = judge_counters(wr.judge)
        previous = getattr(self, "_judge_totals", dict.fromkeys(totals, 0))
        self._judge_totals = totals
        local = {name: totals[name] - previous[name] for name in totals} | {"time/judge_s": wr.last_judge_s}
        metrics = self._metrics["train" if self.model.training else "eval"]
        # per generation batch, over all ranks (each judged its own slice)
        batch = gather_judge_metrics(local, self.accelerator.num_processes)
        for name, value in batch.items():
            metrics[name].append(value)
        self.judge_spend.add_batch(batch)  # the same totals on every rank: every rank keeps the budget alike
        if self.model.training:
            self._update_curriculum()
        else:
            wr.pop_pending()  # evaluation never moves the curriculum
        return rewards

    def _generate(self, prompts: list):  # type: ignore[override]
        started = time.perf_counter()
        out = super()._generate(prompts)
        self._metrics["train" if self.model.training else "eval"]["time/generation_s"].append(
            time.perf_counter() - started
        )
        return out


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
