"""`writing-rl train`: one validated config -> a TRL GRPO run with the Writing-RL reward and curriculum.

The recipe: it wires the parts in `writing_rl.training` (config, samples, TRL inputs, the judge of each rank,
the run-folder policy, the summary) and the engine's reward and callbacks (`engines/trl_grpo.py`) into TRL's
own `GRPOTrainer`.

Run folder (`output_dir`, names in `run_layout`): `config.yaml` (as given; API keys are only ever named, never
stored), `checkpoint-N/` (TRL's, plus `curriculum_snapshot.json`), `curriculum.sqlite` (written by the main
process only), `judge_cache.sqlite` (with several processes one file per rank: `judge_cache.rank{R}.sqlite`),
`metrics.jsonl`, `rollouts.jsonl` (what the judge said about each completion), `judge_spend.json` (what the
judge cost so far, also in each checkpoint: `writing_rl.spend`), and `judge_server.log` when the embedded
judge is used.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from . import run_layout as layout
from .curriculum import Curriculum
from .endpoint.config import check_concurrency
from .engines.final_save import save_final_model
from .errors import ConfigError
from .judge.outage import OutageWait
from .models import resolve_model
from .pointwise import PointwiseReward
from .reward import PairwiseReward
from .rollouts import RolloutWriter
from .spend import JudgeBudgetReached, budget_problem, checkpoint_spend
from .spend import continue_hint as budget_hint
from .thinking import template_opens_thinking
from .training.config import TrainConfig
from .training.judge import judge_endpoint, rank_reward
from .training.run_folder import (
    is_run_folder,
    last_checkpoint,
    record_budget,
    restore_from_checkpoint,
    resume_hint,
    run_folder_problem,
    run_lock,
)
from .training.samples import load_train_samples
from .training.trl_inputs import grpo_args, process_state, to_trl_dataset

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from .engines.preemption import PreemptionCallback

# `train` and `_train` are this module's own; the rest is re-exported for the callers that import it from here
__all__ = [
    "TrainConfig",
    "grpo_args",
    "last_checkpoint",
    "load_train_samples",
    "process_state",
    "restore_from_checkpoint",
    "run_folder_problem",
    "to_trl_dataset",
    "train",
]


def train(
    cfg: TrainConfig, resume: bool = False, overwrite: bool = False, callbacks: Sequence[TrainerCallback] = ()
) -> Path:
    """Run (or resume) training; returns the run folder. `overwrite` deletes an earlier run in the folder first.

    `callbacks` are extra `transformers.TrainerCallback`s, run after ours (e.g. the step timer of
    `benchmarks/step_overhead.py`); the CLI passes none. Raises `JudgeBudgetReached` when the judge spend
    (of the whole run, earlier launches included) reaches `judge.budget`: the run then has a checkpoint of
    that step and no `final/`. Raises `Preempted` on SIGTERM or SIGUSR1 (`engines/preemption.py`): after the
    current step, with its checkpoint."""
    from .engines.trl_version import check_trl

    check_trl()  # before anything is written: an untested TRL could train unknown verdicts as losses
    from .engines.preemption import Preempted, PreemptionCallback, stop_signals

    state = process_state()
    preemption = PreemptionCallback(state.num_processes)
    # one training per run folder: the main process holds the lock from before it looks at the folder to the end
    held = run_lock(Path(cfg.output_dir)) if state.is_main_process else contextlib.nullcontext()
    with held, stop_signals(preemption):
        try:
            return _train(cfg, resume, overwrite, callbacks, preemption)
        except Preempted as err:
            if err.checkpoint is not None:
                raise
            raise Preempted(f"stopped: {err}; {resume_hint(Path(cfg.output_dir))}") from None


def _train(
    cfg: TrainConfig,
    resume: bool,
    overwrite: bool,
    callbacks: Sequence[TrainerCallback],
    preemption: PreemptionCallback,
) -> Path:
    from trl import GRPOTrainer

    from .engines.preemption import Preempted
    from .engines.trl_grpo import (
        CurriculumCheckpointCallback,
        GenerationClock,
        JudgeSpendCallback,
        MetricsJsonlCallback,
        UnknownRewardGuard,
        WritingReward,
    )
    from .pointwise import called_endpoint

    run_dir = Path(cfg.output_dir)
    state = process_state()
    if called := called_endpoint(cfg.reward.kind, cfg.judge, cfg.critic):  # before anything is written: every
        check_concurrency(called[1], state.num_processes, called[0])  # rank needs a share of what it calls
    ddp_timeout = int(getattr(cfg.grpo, "ddp_timeout", 1800))
    if state.num_processes > 1 and cfg.outage_wait_s >= ddp_timeout:
        raise ConfigError(
            f"outage_wait_s ({cfg.outage_wait_s:g}) must be below grpo.ddp_timeout ({ddp_timeout}): the other ranks "
            "wait for a rank that waits for its judge"
        )
    if problem := run_folder_problem(run_dir, resume, overwrite):
        raise ConfigError(problem)
    checkpoint = last_checkpoint(run_dir) if resume else None
    budget, price = cfg.judge.budget, cfg.judge.price
    spend = checkpoint_spend(checkpoint)  # the budget counts the whole run, not this launch
    if problem := budget_problem(spend, budget, price):
        raise ConfigError(
            f"cannot resume {checkpoint}: {problem}; spent {spend.describe(price)}; continue with "
            f"`{budget_hint(run_dir, spend, budget, price)}`"
        )
    samples = load_train_samples(cfg)  # a bad dataset fails here, before the run folder exists
    state.wait_for_everyone()  # every rank has looked at the folder before rank 0 changes it
    if state.is_main_process:
        if overwrite and run_dir.exists() and is_run_folder(run_dir):
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is not None:
            restore_from_checkpoint(run_dir, checkpoint)
            record_budget(run_dir, budget)  # a budget raised for this resume holds for the next one too
        else:
            (run_dir / layout.CONFIG).write_text(
                yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
            )
    state.wait_for_everyone()

    model_path = resolve_model(cfg.model) if state.is_main_process else None
    state.wait_for_everyone()
    model_path = model_path or resolve_model(cfg.model)
    # only the main process opens the store; the others get its levels broadcast (see engines/trl_grpo.py)
    curriculum = Curriculum(cfg.curriculum, run_dir / layout.CURRICULUM_STORE if state.is_main_process else None)
    with (
        judge_endpoint(cfg, run_dir) as served,
        rank_reward(served, run_dir, state.process_index, state.num_processes) as reward,
    ):
        if checkpoint is None and cfg.audit.pairs and isinstance(reward, PairwiseReward):  # it measures the judge
            from .audit.gate import audit_before_training

            audited, audit_spend = audit_before_training(
                cfg.audit, cfg.reward, reward.judge, run_dir / "audit", samples, state
            )
            spend.add_batch(audit_spend)  # the audit's calls count toward judge.budget
            if problem := budget_problem(spend, budget, price):
                raise JudgeBudgetReached(
                    f"the judge audit alone spent {spend.describe(price)}: {problem}; raise judge.budget or lower "
                    "audit.pairs"
                )
            if audited is not None and (measured := audited.measured_tokens()) is not None:
                from .preflight import cost_lines

                lines = cost_lines(cfg, samples, state.num_processes, measured=measured)
                print("with the tokens the audit measured:", *lines, sep="\n  ", flush=True)
        url = (
            reward.scorer.base_url
            if isinstance(reward, PointwiseReward)
            else served.judge.endpoint.base_url
            if served.judge.backend == "llm"
            else None
        )
        where = url or "the rule judge"
        clock = GenerationClock()
        # TRL's own trainer: the reward function does the curriculum, the rollouts and the metrics itself
        writing_reward = WritingReward(
            samples,
            reward,
            curriculum,
            cfg.extras.length_weight,
            cfg.extras.repetition_weight,
            cfg.rollouts.max_text_chars,
            OutageWait(url, cfg.outage_wait_s) if url is not None else None,
            ranks=state,
            rollout_writer=RolloutWriter(run_dir, cfg.rollouts) if state.is_main_process else None,
            unknown_guard=UnknownRewardGuard(cfg.max_unknown_steps, where),
            judge_spend=spend,
            clock=clock,
        )
        keeper = JudgeSpendCallback(spend, budget, price)
        trainer = GRPOTrainer(
            model=model_path,
            reward_funcs=[writing_reward],
            args=grpo_args(cfg, run_dir),
            train_dataset=to_trl_dataset(samples),
            callbacks=[
                keeper,  # before the curriculum snapshot, which marks a checkpoint complete
                CurriculumCheckpointCallback(curriculum),
                MetricsJsonlCallback(run_dir / layout.METRICS),
                preemption,
                *callbacks,
                clock,  # last: a callback that waits in on_step_begin (a step timer) is not counted as generation
            ],
        )
        if cfg.reward.strip_thinking:  # a completion of a template that opens <think> holds only its end
            options = getattr(trainer.args, "chat_template_kwargs", None) or {}
            writing_reward.thinking_opened = template_opens_thinking(trainer.processing_class, **options)
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            if keeper.stopped is not None:  # not finished: no final model, the checkpoint continues it
                step = trainer.state.global_step
                raise JudgeBudgetReached(
                    f"stopped after step {step}: {keeper.stopped}; spent {spend.describe(price)}; saved "
                    f"{run_dir / f'checkpoint-{step}'}; continue with `{budget_hint(run_dir, spend, budget, price)}`"
                )
            if (step := preemption.stopped_at) is not None:
                checkpoint_dir = run_dir / f"checkpoint-{step}"
                raise Preempted(
                    f"stopped by {preemption.stopped_by} after step {step}; saved {checkpoint_dir}; continue with "
                    f"`writing-rl train --resume {run_dir}`",
                    str(checkpoint_dir),
                )
            save_final_model(trainer, run_dir / layout.FINAL)
        finally:
            reward.close()
    return run_dir
