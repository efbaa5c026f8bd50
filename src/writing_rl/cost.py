"""What a run's judge will cost, from its config alone: seen before the first step, not on the invoice.

Calls per optimizer step = completions per step x judge calls per completion. With TRL GRPO a step
trains `per_device_train_batch_size x gradient_accumulation_steps x num_processes` completions; TRL
generates `generation_batch_size` completions every `steps_per_generation x num_iterations` micro-steps,
so per optimizer step that is the same number divided by `num_iterations` (TRL 1.16, GRPOTrainer
`_prepare_inputs`). With verl a step judges `data.train_batch_size x actor_rollout_ref.rollout.n`
rollouts. A completion costs one call per judged order (2 for `reward.position` both_average and
both_agree), and a soft judge that reasons first through `/completions` makes two requests per order
(the reasoning, then the verdict token). A rule judge calls nothing.

Under `reward.kind: pointwise` the pairwise judge is never called: the critic scores each answer once per
criterion of its sample (the generic rubric's one where it has none), so the estimate counts those calls, as
a lower bound (re-asks after an unreadable reply and soft mode's follow-up requests add some), and does not
estimate their tokens or money: the token counts below are the pairwise judge's prompt, not the critic's.

Tokens per call: the judge prompt without the answers (counted with the judge's own counter as
`PairwiseJudge.prompt_tokens` counts it, averaged over the dataset, plus `prompt_overhead_tokens`) +
the mean reference + a full-length completion; out: the judge's whole reply budget (`max_tokens`; 1 for
a soft verdict read directly). Both are upper bounds: completions and replies are usually shorter, cache
hits and answers the injection screen decides cost nothing. Measured figures (`MeasuredTokens`, e.g.
from a judge audit) replace the estimated prompt overhead and reply length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .judge.budget import JudgePrice

if TYPE_CHECKING:
    from .data import Sample
    from .judge import JudgeConfig
    from .reward import RewardConfig

MAX_COUNTED = 2000  # samples whose prompts and references are counted (evenly spread); the mean barely moves after
# verl 0.9.1's defaults (verl/trainer/config/ppo_trainer.yaml) for the keys the estimate reads
VERL_DEFAULTS: dict[str, Any] = {
    "data.train_batch_size": 1024,
    "data.max_response_length": 512,
    "data.train_files": None,
    "actor_rollout_ref.rollout.n": 1,
    "trainer.total_training_steps": None,
    "trainer.total_epochs": 30,
}


@dataclass(frozen=True)
class MeasuredTokens:
    """Token counts measured on the real judge (a judge audit's `tokens.prompt_overhead_per_call` and
    `tokens.completion_per_call`)."""

    prompt_overhead: float  # the judge prompt's tokens per call, without the two answers
    completion: float  # the judge's output tokens per call


@dataclass(frozen=True)
class CostEstimate:
    calls_per_step: float
    steps: int | None  # None: the config does not say (verl without total_training_steps and no data here)
    input_per_call: float
    output_per_call: float
    measured: bool
    basis: str  # how the calls per step come about
    price: JudgePrice | None = None
    runs: int = 1  # an ablation trains one run per arm and seed
    free: bool = False  # a rule judge
    notes: tuple[str, ...] = ()
    pointwise: bool = False  # critic calls counted; their tokens and money not estimated

    @classmethod
    def critic(
        cls,
        answers: float,
        what: str,
        samples: Sequence[Sample],
        steps: int | None,
        notes: Sequence[str] = (),
        runs: int = 1,
    ) -> CostEstimate:
        """`reward.kind: pointwise`: one critic call per criterion per answer, and no token estimate."""
        per_answer = mean_criteria(samples)
        basis = f"{answers:,.4g} {what} x {per_answer:,.3g} criteria on average, at least"
        return cls(answers * per_answer, steps, 0, 0, False, basis, runs=runs, notes=tuple(notes), pointwise=True)

    @property
    def calls(self) -> float | None:
        return None if self.steps is None else self.calls_per_step * self.steps * self.runs

    @property
    def input_tokens(self) -> float | None:
        return None if self.calls is None else self.calls * self.input_per_call

    @property
    def output_tokens(self) -> float | None:
        return None if self.calls is None else self.calls * self.output_per_call

    @property
    def tokens(self) -> float | None:
        return (
            None if self.calls is None or self.pointwise else self.calls * (self.input_per_call + self.output_per_call)
        )

    @property
    def money(self) -> float | None:
        if self.price is None or self.calls is None or self.pointwise:
            return None
        return self.price.cost(self.input_tokens or 0.0, self.output_tokens or 0.0)

    @property
    def source(self) -> str:
        return "measured" if self.measured else "estimated, upper bound"

    def describe(self) -> str:
        """One line: calls, tokens and (when priced) money for the whole run."""
        if self.free:
            return "judge cost: none (rule judge: no judge calls)"
        if self.pointwise:
            calls = "steps unknown" if self.calls is None else f"at least {self.calls:,.0f} calls"
            return f"critic cost: {calls}; tokens and money not estimated under reward.kind: pointwise"
        if self.calls is None:
            return f"judge cost: {self.calls_per_step:,.4g} calls a step; steps unknown ({'; '.join(self.notes)})"
        text = f"judge cost: {self.calls:,.0f} calls, ~{_count(self.tokens or 0)} tokens ({self.source})"
        if self.money is not None and self.price is not None:
            text += f", ~{_money(self.money, self.price.currency)}"
        return text

    def lines(self) -> list[str]:
        """A few lines for `writing-rl check` and the start of `train`."""
        if self.free:
            return [self.describe()]
        if self.pointwise:
            steps = f" x {self.steps:,} steps = at least {self.calls:,.0f} calls" if self.calls is not None else ""
            return [
                f"critic calls: {self.calls_per_step:,.4g} a step ({self.basis}){steps}",
                "critic tokens and money: not estimated under reward.kind: pointwise",
                *(f"judge cost note: {n}" for n in self.notes),
            ]
        runs = f" x {self.runs} runs (one per arm and seed)" if self.runs > 1 else ""
        steps = f" x {self.steps:,} steps{runs} = {self.calls:,.0f} calls" if self.calls is not None else ""
        out = [f"judge calls: {self.calls_per_step:,.4g} a step ({self.basis}){steps}"]
        tokens = f"~{self.input_per_call:,.0f} in + {self.output_per_call:,.0f} out a call ({self.source})"
        if self.tokens is not None:
            tokens += f" = ~{_count(self.tokens)} tokens in all"
        out.append(f"judge tokens: {tokens}")
        if self.price is None:
            out.append("judge money: set judge.price (input_per_million, output_per_million) to see it")
        elif self.money is not None:
            p = self.price
            out.append(
                f"judge money: ~{_money(self.money, p.currency)} at {p.input_per_million:g} in / "
                f"{p.output_per_million:g} out {p.currency} per million tokens"
            )
        return out + [f"judge cost note: {n}" for n in self.notes]


def _count(n: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e4, "k")):
        if n >= size:
            return f"{n / (size if unit != 'k' else 1e3):,.1f}{unit}"
    return f"{n:,.0f}"


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}" if value >= 1 else f"{value:,.4f} {currency}"


# -- the parts ----------------------------------------------------------------------------------------
def orders(reward: RewardConfig) -> int:
    """Judged orders per completion: both orders cancel the judge's position bias at twice the calls."""
    return 2 if reward.position in ("both_average", "both_agree") else 1


def requests_per_order(judge: JudgeConfig) -> int:
    """A soft judge that reasons first via `/completions` sends the reasoning, then the verdict position."""
    return 2 if judge.mode == "soft" and judge.reason_first and judge.soft_via == "completions" else 1


def reply_tokens(judge: JudgeConfig) -> int:
    """The judge's output budget per judged order: its explanation (hard), one verdict token (soft), or both."""
    if judge.mode == "hard":
        return judge.max_tokens
    return judge.max_tokens + 1 if judge.reason_first else 1


def mean_criteria(samples: Sequence[Sample]) -> float:
    """Criteria the critic scores per answer, averaged over the samples (1, the generic rubric, with none here)."""
    from .critic import GENERIC_RUBRIC, criteria_list

    counts = [len(criteria_list(s.criteria) or GENERIC_RUBRIC) for s in _spread(samples)]
    return sum(counts) / len(counts) if counts else 1.0


def _spread(samples: Sequence[Sample]) -> Sequence[Sample]:
    if len(samples) <= MAX_COUNTED:
        return samples
    step = len(samples) / MAX_COUNTED
    return [samples[int(i * step)] for i in range(MAX_COUNTED)]


def prompt_tokens(judge_cfg: JudgeConfig, samples: Sequence[Sample]) -> float:
    """The judge prompt without the answers, counted as the judge counts it (template, question, criteria,
    `prompt_overhead_tokens`), averaged over the samples; the bare template when there are none."""
    from .judge import PairwiseJudge

    judge = PairwiseJudge(judge_cfg.model_copy(update={"cache_path": None}))  # no cache file: nothing is judged
    counted = [judge.prompt_tokens(s.prompt_text, s.criteria_text) for s in _spread(samples)]
    return sum(counted) / len(counted) if counted else float(judge.prompt_tokens("", None))


def reference_tokens(judge_cfg: JudgeConfig, samples: Sequence[Sample]) -> float:
    """The mean reference in the judge's tokens, over every reference of every sample (the curriculum
    moves each prompt through all of them)."""
    from .judge.context import load_counter

    counter = load_counter(judge_cfg.tokenizer or judge_cfg.chat_template)
    lengths = [counter.count(r) for s in _spread(samples) for r in s.references]
    return sum(lengths) / len(lengths) if lengths else 0.0


def _per_call(
    judge: JudgeConfig, samples: Sequence[Sample], completion_len: int, measured: MeasuredTokens | None
) -> tuple[float, float]:
    """(input, output) tokens per request."""
    answers = reference_tokens(judge, samples) + completion_len
    if measured is not None:
        return measured.prompt_overhead + answers, measured.completion
    n = requests_per_order(judge)
    prompt = prompt_tokens(judge, samples) + answers
    # the verdict request of a reasoning soft judge carries the reasoning too
    inputs = n * prompt + (judge.max_tokens if n == 2 else 0)
    return inputs / n, reply_tokens(judge) / n


def _basis(completions: float, what: str, n_orders: int, per_order: int) -> str:
    text = f"{completions:,.4g} {what} x {n_orders} order{'s' if n_orders > 1 else ''}"
    return text + (f" x {per_order} requests (reasoning, then verdict)" if per_order > 1 else "")


# -- per engine -------------------------------------------------------------------------------------------
def trl_completions_per_step(grpo: Any, num_processes: int = 1) -> float:
    """Completions one optimizer step trains (and the judge scores), on average over the run."""
    extra = grpo.model_extra or {}
    per_step = grpo.per_device_train_batch_size * grpo.gradient_accumulation_steps * num_processes
    return per_step / int(extra.get("num_iterations") or 1)


def estimate_train_cost(
    cfg: Any, samples: Sequence[Sample], num_processes: int = 1, measured: MeasuredTokens | None = None
) -> CostEstimate:
    """A `writing-rl train` (or ablation) config: TRL GRPO."""
    runs = cfg.n_trainings() if getattr(cfg, "ablation", None) is not None else 1
    if cfg.judge.backend == "rule":
        return CostEstimate(0, cfg.grpo.max_steps, 0, 0, measured is not None, "rule judge", runs=runs, free=True)
    completions = trl_completions_per_step(cfg.grpo, num_processes)
    if cfg.reward.kind == "pointwise":
        return CostEstimate.critic(completions, "completions", samples, cfg.grpo.max_steps, runs=runs)
    n_orders, per_order = orders(cfg.reward), requests_per_order(cfg.judge)
    inputs, outputs = _per_call(cfg.judge, samples, cfg.grpo.max_completion_length, measured)
    notes = []
    if str((cfg.grpo.model_extra or {}).get("eval_strategy", "no")) != "no":
        notes.append("evaluation during training (grpo.eval_strategy) calls the judge too: not counted")
    return CostEstimate(
        calls_per_step=completions * n_orders * per_order,
        steps=cfg.grpo.max_steps,
        input_per_call=inputs,
        output_per_call=outputs,
        measured=measured is not None,
        basis=_basis(completions, "completions", n_orders, per_order)
        + (f", over {num_processes} processes" if num_processes > 1 else ""),
        price=cfg.judge.price,
        runs=runs,
        notes=tuple(notes),
    )


def verl_setting(recipe: Any, key: str, settings: Mapping[str, Any] | None = None) -> Any:
    """A verl setting: from `settings` (verl's composed config, where verl is installed), else the recipe's
    `verl:` mapping, else verl's default (`VERL_DEFAULTS`)."""
    if settings is not None and settings.get(key) is not None:
        return settings[key]
    node: Any = recipe.verl
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return VERL_DEFAULTS[key]
        node = node[part]
    return node


def verl_samples(recipe: Any, settings: Mapping[str, Any] | None = None) -> list[Sample] | None:
    """The training samples in the recipe's `data.train_files` parquet (as `writing-rl export-verl` wrote
    them), or None where they cannot be read here (no file, no pyarrow)."""
    from .verl.export import ExportError, read_exported

    paths = verl_train_files(recipe, settings)
    if not paths:
        return None
    try:
        return read_exported(paths)
    except (ImportError, OSError, ValueError, KeyError, TypeError, ExportError):
        return None


def verl_train_files(recipe: Any, settings: Mapping[str, Any] | None = None) -> list[str]:
    """`data.train_files` as a list (verl takes one path or several)."""
    files = verl_setting(recipe, "data.train_files", settings)
    return [files] if isinstance(files, str) else list(files or [])


def estimate_verl_cost(
    recipe: Any,
    samples: Sequence[Sample] | None = None,
    measured: MeasuredTokens | None = None,
    settings: Mapping[str, Any] | None = None,
) -> CostEstimate:
    """A `writing-rl train-verl` recipe. `settings`: verl's composed values by dotted key (`writing-rl
    check` in the verl environment passes them); without them the recipe's own values or verl's defaults."""

    def get(key: str) -> Any:
        return verl_setting(recipe, key, settings)

    if samples is None:
        samples = verl_samples(recipe, settings)
    notes = []
    steps = get("trainer.total_training_steps")
    batch = int(get("data.train_batch_size"))
    if steps is None:
        epochs = int(get("trainer.total_epochs"))
        if samples is not None:
            steps = len(samples) // batch * epochs
            notes.append(
                f"no trainer.total_training_steps: verl runs {len(samples)} rows // {batch} a batch x {epochs} epochs"
            )
        else:
            notes.append("set trainer.total_training_steps, or make data.train_files readable here, to see the total")
    if samples is None:
        notes.append("data.train_files not read here: prompts and references not counted in the tokens")
    notes.append("validation (trainer.test_freq, val_before_train) calls the judge too: not counted")
    free = recipe.judge.backend == "rule"
    if free:
        return CostEstimate(0, steps, 0, 0, measured is not None, "rule judge", free=True)
    rollouts = batch * int(get("actor_rollout_ref.rollout.n"))
    if recipe.reward.kind == "pointwise":
        return CostEstimate.critic(rollouts, "rollouts", samples or [], None if steps is None else int(steps), notes)
    n_orders, per_order = orders(recipe.reward), requests_per_order(recipe.judge)
    inputs, outputs = _per_call(recipe.judge, samples or [], int(get("data.max_response_length")), measured)
    return CostEstimate(
        calls_per_step=rollouts * n_orders * per_order,
        steps=None if steps is None else int(steps),
        input_per_call=inputs,
        output_per_call=outputs,
        measured=measured is not None,
        basis=_basis(rollouts, "rollouts", n_orders, per_order),
        price=recipe.judge.price,
        notes=tuple(notes),
    )


def estimate_cost(
    cfg: Any,
    samples: Sequence[Sample] | None = None,
    num_processes: int = 1,
    measured: MeasuredTokens | None = None,
) -> CostEstimate:
    """The judge cost of a training config (`TrainConfig`, `AblationConfig`) or a verl recipe (`VerlRecipe`).
    `samples`: the training samples when already loaded (else they are read as the run would read them)."""
    if hasattr(cfg, "verl"):
        return estimate_verl_cost(cfg, samples, measured)
    if samples is None and cfg.judge.backend != "rule":
        from .training.samples import load_train_samples

        samples = load_train_samples(cfg)
    return estimate_train_cost(cfg, samples or [], num_processes, measured)
