"""`writing-rl train`: one validated config -> a TRL GRPO run with the Writing-RL reward and curriculum.

Run folder (`output_dir`): `config.yaml` (as given; API keys are only ever named, never stored),
`checkpoint-N/` (TRL's, plus `curriculum_snapshot.json`), `curriculum.sqlite` (written by the main process
only), `judge_cache.sqlite` (with several processes one file per rank: `judge_cache.rank{R}.sqlite`),
`metrics.jsonl`, `rollouts.jsonl` (what the judge said about each completion), `judge_spend.json` (what the
judge cost so far, also in each checkpoint: `writing_rl.spend`), and `judge_server.log` when the embedded
judge is used.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from . import run_layout as layout
from .audit.runner import AuditSettings
from .config import ConfigError, LocalJudgeSettings, load_config
from .curriculum import Curriculum, CurriculumConfig, CurriculumStore
from .data import Sample, SampleFileError, load_samples
from .endpoint import EndpointError
from .endpoint.config import check_concurrency
from .engines.final_save import save_final_model
from .jsonl import JsonlFileError, read_jsonl, trim_steps
from .judge import JudgeConfig, PairwiseJudge, build_judge
from .judge.budget import JudgeBudget
from .judge.cache import JudgeCache, rank_cache_path
from .judge.judgement import Judge
from .judge.outage import OutageWait
from .models import EMBEDDED_MODEL, resolve_model
from .reward import ExtraRewards, PairwiseReward, RewardConfig
from .rollouts import ROLLOUTS_FILE, RolloutSettings, RolloutWriter
from .run_layout import CURRICULUM_SNAPSHOT
from .spend import SPEND_FILE, JudgeBudgetReached, budget_problem, checkpoint_spend, saved_spend_line
from .spend import continue_hint as budget_hint

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from .engines.preemption import PreemptionCallback

DEMO_DATASET = "demo"
DEMO_SAMPLES = files("writing_rl") / "assets" / "demo_samples.jsonl"
DEMO_CONFIG = files("writing_rl") / "assets" / "demo.yaml"


class GRPOSettings(BaseModel):
    """The GRPO settings most runs touch; any other `trl.GRPOConfig` field may be added here too."""

    model_config = ConfigDict(extra="allow")

    num_generations: int = Field(4, ge=2, description="GRPO group size G")
    per_device_train_batch_size: int = Field(8, ge=1, description="completions per device per step (a multiple of G)")
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_completion_length: int = Field(256, ge=1)
    learning_rate: float = Field(1e-6, gt=0)
    beta: float = Field(0.0, ge=0, description="KL coefficient (0 = no reference model)")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = "dapo"
    temperature: float = Field(1.0, gt=0)
    max_steps: int = Field(400, ge=1)
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    report_to: list[str] = Field(
        default_factory=lambda: ["none"], description="tensorboard, wandb, ... (TRL's report_to)"
    )
    seed: int = 0


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(EMBEDDED_MODEL, description="HF model folder/name, or the embedded SmolLM2")
    dataset: str = Field(DEMO_DATASET, description="'demo', a .jsonl of samples, or a datasets name/folder")
    dataset_split: str | None = None
    output_dir: str = "runs/demo"
    local_judge: LocalJudgeSettings = Field(default_factory=LocalJudgeSettings)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    extras: ExtraRewards = Field(default_factory=ExtraRewards)
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    rollouts: RolloutSettings = Field(default_factory=RolloutSettings)
    audit: AuditSettings = Field(
        default_factory=AuditSettings,
        description="the judge audit run before the model is loaded (docs/judge-audit.md); pairs: 0 skips it",
    )
    max_unknown_steps: int = Field(
        2, ge=0, description="stop after this many steps in a row in which the judge gave no reward at all (0: never)"
    )
    outage_wait_s: float = Field(
        300,
        ge=0,
        description="when every judge call of a step fails and the judge's address stops answering, wait this long "
        "for it to come back and judge the step again, before the step counts toward max_unknown_steps (0: never)",
    )


DATA_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")


def load_train_samples(cfg: TrainConfig) -> list[Sample]:
    """The training samples; a missing file or a dataset `datasets` cannot load is a one-line `ConfigError`."""
    if cfg.dataset == DEMO_DATASET:
        return load_samples(str(DEMO_SAMPLES))
    local = Path(cfg.dataset).expanduser()
    if not local.exists() and (cfg.dataset.endswith(DATA_FILE_SUFFIXES) or cfg.dataset.startswith(("/", ".", "~"))):
        raise ConfigError(f"dataset: {cfg.dataset}: no such file (give a samples .jsonl, a dataset folder or 'demo')")
    try:
        return load_samples(cfg.dataset, split=cfg.dataset_split)
    except (SampleFileError, JsonlFileError):
        raise
    except Exception as err:  # datasets raises many kinds (missing split, no network, bad format)
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ConfigError(
            f"dataset: {cfg.dataset}: datasets.load_dataset could not load it ({type(err).__name__}: {first})"
        ) from None


def to_trl_dataset(samples: list[Sample]):  # type: ignore[no-untyped-def]
    from datasets import Dataset

    def prompt(s: Sample) -> list[dict[str, str]]:
        if isinstance(s.prompt, str):
            return [{"role": "user", "content": s.prompt}]
        return [m.model_dump() for m in s.prompt]

    return Dataset.from_list([{"prompt": prompt(s), "sample_key": s.key} for s in samples])


def grpo_args(cfg: TrainConfig, output_dir: Path):  # type: ignore[no-untyped-def]
    from trl import GRPOConfig

    settings = cfg.grpo.model_dump(exclude_none=True)
    import torch

    defaults: dict[str, Any] = {"save_strategy": "steps", "disable_dropout": True, "log_completions": False}
    if not torch.cuda.is_available():  # TRL defaults to bf16, which needs a GPU
        defaults.update(use_cpu=True, bf16=False)
    try:
        return GRPOConfig(output_dir=str(output_dir), **{**defaults, **settings})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"grpo settings rejected by trl.GRPOConfig: {err}") from None


def process_state():  # type: ignore[no-untyped-def]
    """accelerate's view of this process (rank, world size), set up as `grpo_args` sets up TRL: on the CPU
    where there is no CUDA. A plain `PartialState()` there sees a world of one in every process of a
    multi-process launch, so every rank would act as the main one."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


@contextlib.contextmanager
def judge_endpoint(cfg: TrainConfig, run_dir: Path) -> Iterator[JudgeConfig]:
    """The judge config to use; with `local_judge.enabled` the main process starts the embedded judge
    and every rank's `base_url: local` endpoints point at it."""
    from .server import local_judge_limits, local_server, point_local_endpoints

    judge = local_judge_limits(cfg.judge, cfg.local_judge)
    if not cfg.local_judge.enabled:
        yield point_local_endpoints(judge, None)
        return
    from accelerate.utils import broadcast_object_list

    state = process_state()
    server = None
    box: list[Any] = [None]
    try:
        if state.is_main_process:
            server = local_server(cfg.local_judge, run_dir).start()
            box = [server.base_url]
        if state.num_processes > 1:
            broadcast_object_list(box, from_process=0)
        yield point_local_endpoints(judge, box[0])
    finally:
        if server is not None:
            server.stop()


@contextlib.contextmanager
def rank_judge(judge_cfg: JudgeConfig, run_dir: Path, rank: int, world_size: int) -> Iterator[Judge]:
    """This process's judge: its share of the endpoint's `max_concurrency` (the configured number is the
    total over all ranks), and a cache file of its own that it holds locked until the run ends, so no
    SQLite file is shared by processes that may sit on different hosts (shared WAL breaks on NFS)."""
    if judge_cfg.backend == "rule":
        yield build_judge(judge_cfg)
        return
    cache_path = rank_cache_path(judge_cfg.cache_path or run_dir / "judge_cache.sqlite", rank, world_size)
    share = judge_cfg.endpoint.for_rank(rank, world_size, "judge.endpoint")
    cache = JudgeCache(cache_path, exclusive=True)
    try:
        yield PairwiseJudge(
            judge_cfg.model_copy(update={"endpoint": share, "cache_path": str(cache_path)}), cache=cache
        )
    finally:
        cache.close()


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint: one killed between TRL's save and our snapshot is skipped."""
    found = [
        (int(m.group(1)), p)
        for p in run_dir.glob("checkpoint-*")
        if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / CURRICULUM_SNAPSHOT).is_file()
    ]
    return max(found)[1] if found else None


def restore_from_checkpoint(run_dir: Path, checkpoint: Path) -> None:
    """Put the curriculum store back to the state saved with `checkpoint`, forgetting later promotions."""

    snapshot = checkpoint / CURRICULUM_SNAPSHOT
    if not snapshot.is_file():
        raise ConfigError(f"{checkpoint} has no {CURRICULUM_SNAPSHOT}: cannot restore the curriculum exactly")
    with CurriculumStore(run_dir / layout.CURRICULUM_STORE) as store:
        store.load_snapshot(snapshot)
    for name in (layout.METRICS, layout.ROLLOUTS):
        trim_steps(run_dir / name, int(checkpoint.name.split("-")[1]))
    if (checkpoint / SPEND_FILE).is_file():
        shutil.copyfile(checkpoint / SPEND_FILE, run_dir / SPEND_FILE)


def record_budget(run_dir: Path, budget: JudgeBudget) -> None:
    """Write the budget a resume was given into the run's config.yaml, so a later resume keeps it."""
    path = run_dir / layout.CONFIG
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    judge = data.setdefault("judge", {})
    if judge.get("budget") != budget.model_dump(mode="json"):
        judge["budget"] = budget.model_dump(mode="json")
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def is_run_folder(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in (layout.CONFIG, layout.CURRICULUM_STORE)) or any(
        run_dir.glob("checkpoint-*")
    )


def run_folder_problem(
    run_dir: Path, resume: bool, overwrite: bool, start_over: str = "writing-rl train CONFIG --overwrite"
) -> str | None:
    """Why this run cannot start in `run_dir`, with the exact command that gets the user going; None if it can.

    `start_over` is the command that starts the same run again from scratch in the same folder.
    """
    if resume:
        if last_checkpoint(run_dir) is not None:
            return None
        if not is_run_folder(run_dir):
            return f"nothing to resume: {run_dir} is not a run folder"
        return (
            f"nothing to resume: the run in {run_dir} never reached a checkpoint (no checkpoint-* folder); "
            f"start over with `{start_over}`"
        )
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    if not is_run_folder(run_dir):  # e.g. `--output-dir .`: checkpoints would mix with the user's files
        also = " (--overwrite deletes only run folders)" if overwrite else ""
        return (
            f"{run_dir} holds files but no run{also}: choose a new or empty output_dir, "
            f"e.g. --output-dir {run_dir / ('run-' + time.strftime('%Y%m%d-%H%M%S'))}"
        )
    if overwrite:
        return None
    fresh = f"--output-dir {run_dir}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "final").is_dir():
        return f"{run_dir} holds a finished run: start over with `{start_over}`, or keep it and use {fresh}"
    if last_checkpoint(run_dir) is not None:
        return (
            f"{run_dir} already holds a run: resume it with `writing-rl train --resume {run_dir}`, start over with "
            f"`{start_over}`, or keep it and use {fresh}"
        )
    return (
        f"{run_dir} holds a run that never reached a checkpoint (nothing to resume): start over with "
        f"`{start_over}`, or keep it and use {fresh}"
    )


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

    preemption = PreemptionCallback(process_state().num_processes)
    with stop_signals(preemption):
        try:
            return _train(cfg, resume, overwrite, callbacks, preemption)
        except Preempted as err:
            if err.checkpoint is not None:
                raise
            raise Preempted(f"stopped: {err}; {resume_hint(Path(cfg.output_dir))}") from None


def resume_hint(run_dir: Path) -> str:
    if (checkpoint := last_checkpoint(run_dir)) is None:
        return "no checkpoint to resume from: start the run again"
    return f"the last checkpoint is {checkpoint}: continue with `writing-rl train --resume {run_dir}`"


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

    run_dir = Path(cfg.output_dir)
    state = process_state()
    if cfg.judge.backend == "llm":  # before anything is written: every rank needs a share of the judge
        check_concurrency(cfg.judge.endpoint, state.num_processes, "judge.endpoint")
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
        judge_endpoint(cfg, run_dir) as judge_cfg,
        rank_judge(judge_cfg, run_dir, state.process_index, state.num_processes) as judge,
    ):
        if isinstance(judge, PairwiseJudge):
            try:
                judge.client.check_credentials()
            except EndpointError as err:
                raise ConfigError(str(err)) from None
        if checkpoint is None and cfg.audit.pairs:
            from .audit.gate import audit_before_training

            audited, audit_spend = audit_before_training(cfg.audit, cfg.reward, judge, run_dir / "audit", samples, state)
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
        reward = PairwiseReward(judge, cfg.reward)
        where = judge_cfg.endpoint.base_url if judge_cfg.backend == "llm" else "the rule judge"
        clock = GenerationClock()
        # TRL's own trainer: the reward function does the curriculum, the rollouts and the metrics itself
        writing_reward = WritingReward(
            samples,
            reward,
            curriculum,
            cfg.extras.length_weight,
            cfg.extras.repetition_weight,
            cfg.rollouts.max_text_chars,
            OutageWait(judge_cfg.endpoint.base_url, cfg.outage_wait_s) if isinstance(judge, PairwiseJudge) else None,
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
            save_final_model(trainer, run_dir / "final")
        finally:
            reward.close()
    return run_dir


def load_train_config(path: str | Path | None) -> TrainConfig:
    """The given config, or with none the embedded demo (the same file as configs/demo.yaml)."""
    return load_config(path or str(DEMO_CONFIG), TrainConfig)


def resume_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / layout.CONFIG
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.yaml)")
    # the folder given wins over the (often relative) output_dir saved in it
    return load_config(path, TrainConfig).model_copy(update={"output_dir": str(run_dir)})


def _num(value: Any, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def step_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per training step: reward, its pairwise part, win rate against the current reference, promotions, level."""
    lines = [
        f"{'step':>5} {'reward':>7} {'pairwise':>8} {'win':>5} {'tie':>5} {'loss':>5} {'promoted':>8} {'level':>6}"
    ]
    for r in rows:
        lines.append(
            f"{r['step']:>5} {_num(r.get('reward'), '.3f'):>7} {_num(r.get('reward/pairwise'), '.3f'):>8} "
            f"{_num(r.get('judge/win_rate')):>5} {_num(r.get('judge/tie_rate')):>5} {_num(r.get('judge/loss_rate')):>5} "
            f"{_num(r.get('curriculum/promotions'), '.0f'):>8} {_num(r.get('curriculum/mean_level')):>6}"
        )
    return lines


def summarize_run(run_dir: Path) -> str:
    """Where the results are, what each step did, and what the judge audit said of the judge."""
    from .audit.report import headline, read_audit

    lines = [f"run folder: {run_dir}"]
    if (audit := read_audit(run_dir)) is not None:  # first: it says how far to trust the wins below
        lines.append(f"{headline(audit)}: {run_dir / 'audit' / 'index.html'}")
        lines += [f"  - {r['text']}" for r in audit["recommendations"]]
    ckpts = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if ckpts:
        final = run_dir / "final"
        last = f"final model: {final}" if final.is_dir() else "no final model (stopped early: resume it with --resume)"
        lines.append(f"checkpoints: {', '.join(p.name for p in ckpts)}; {last}")
    metrics = run_dir / layout.METRICS
    if metrics.is_file():
        steps = [r for r in read_jsonl(metrics) if "reward" in r]
        if steps:
            lines += ["per step (win/tie/loss against each prompt's current reference):", *step_table(steps)]
            unknown = max((r.get("judge/unknown_rate") or 0) for r in steps)
            if unknown:
                lines.append(f"warning: up to {unknown:.0%} of rewards per step were missing (see rollouts)")
        lines.append(f"metrics: {metrics} (TensorBoard logs under {run_dir / 'runs'} when report_to includes it)")
    if (run_dir / ROLLOUTS_FILE).is_file():
        lines.append(f"rollouts: {run_dir / ROLLOUTS_FILE} (writing-rl rollouts {run_dir} --step N)")
    if (run_dir / SPEND_FILE).is_file():
        lines.append(f"judge spend: {saved_spend_line(run_dir / SPEND_FILE)}")
    lines.append(f"curriculum: writing-rl curriculum show {run_dir}")
    return "\n".join(lines)
