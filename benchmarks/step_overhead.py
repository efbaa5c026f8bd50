"""Framework overhead per GRPO step: our trainer against TRL's own GRPOTrainer, same model, config and batch.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/step_overhead.py                     # tiny random Llama
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/step_overhead.py --model embedded:smollm2-135m-instruct

"ours" is `writing_rl.train.train`: TRL's `GRPOTrainer` with our `WritingReward` reward function and
the rule judge (`length_fit`, no latency) behind the whole reward path (`PairwiseReward` in
`reference_first` order, injection screen), the dynamic curriculum in its SQLite store, rollout
records, metrics.jsonl. "trl" is `trl.GRPOTrainer`
with a plain Python reward function (the same length score, computed directly). Both get the same
model, the same `GRPOConfig` (built by our `grpo_args` from one config), the same prompts in the same
order, and completions forced to full length (`min_new_tokens`), so both do the same model work.

A step is timed by a `TrainerCallback` from `on_step_begin` to the end of its `on_step_end` / `on_log`
(logging runs after `on_step_end`, and our metrics are written there), in wall and in CPU seconds.
The two arms run in two processes that take turns step by step (trl step 1, ours step 1, trl step 2,
...; the waiting one is blocked on a semaphore), so drift in the load of a shared machine falls on
both arms alike and neither competes with the other. The first step of each arm is warm-up and left
out. Threads: OMP_NUM_THREADS and torch's thread count are `--threads` in both arms.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

DEFAULT_DATASET = Path(__file__).resolve().parents[1] / "examples" / "ablation" / "hidden_train.jsonl"
TINY = "tiny"


class Timing(NamedTuple):
    wall: float
    cpu: float


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def step_timer(my_turn: Any, their_turn: Any, they_ended: Any, profiler: cProfile.Profile | None = None):  # type: ignore[no-untyped-def]
    """A callback that waits for this arm's turn before each optimizer step (unless the other arm has
    ended), hands the turn over after it, and keeps each step's wall and CPU seconds, logging included.
    With a profiler, it profiles every step but the first."""
    from transformers import TrainerCallback

    def now() -> Timing:
        return Timing(time.perf_counter(), time.process_time())

    class TurnTakingStepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[Timing] = []
            self.begin: Timing | None = None
            self.end: Timing | None = None

        def wait_for_turn(self) -> None:
            while not my_turn.acquire(timeout=1.0) and not they_ended.is_set():
                pass

        def close(self) -> None:
            if profiler is not None:
                profiler.disable()
            if self.begin is not None and self.end is not None:
                self.steps.append(Timing(self.end.wall - self.begin.wall, self.end.cpu - self.begin.cpu))
                their_turn.release()
            self.begin = self.end = None

        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.close()
            self.wait_for_turn()
            if profiler is not None and self.steps:
                profiler.enable()
            self.begin = now()

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.end = now()

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if self.begin is not None:
                self.end = now()

        def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.close()

    return TurnTakingStepTimer()


def bench_config(args: argparse.Namespace, model: str):  # type: ignore[no-untyped-def]
    from writing_rl.train import TrainConfig

    return TrainConfig.model_validate(
        {
            "model": model,
            "dataset": str(args.dataset),
            "judge": {"backend": "rule", "rule": {"name": "length_fit"}},
            "reward": {"position": "reference_first"},
            "curriculum": {"wins_to_promote": 1},
            "grpo": {
                "num_generations": args.generations,
                "per_device_train_batch_size": args.batch,
                "max_completion_length": args.completion_tokens,
                "generation_kwargs": {"min_new_tokens": args.completion_tokens},
                "gradient_checkpointing": False,
                "learning_rate": 1e-5,
                "max_steps": args.steps,
                "save_steps": 10**6,
                "logging_steps": 1,
                "report_to": ["none"],
                "seed": 0,
            },
        }
    )


def run_trl(cfg: Any, run_dir: Path, timer: Any) -> None:
    """TRL's GRPOTrainer with a plain reward function: the length score of each completion."""
    from trl import GRPOTrainer

    from writing_rl.engines.trl_grpo import completion_text
    from writing_rl.models import resolve_model
    from writing_rl.text_metrics import count_length, length_score
    from writing_rl.train import grpo_args, load_train_samples, to_trl_dataset

    samples = load_train_samples(cfg)
    targets = {s.key: s.length for s in samples}

    def length_reward(completions: list, sample_key: list[str], **_: Any) -> list[float]:
        return [
            length_score(targets[k], count_length(completion_text(c))) / 100 for c, k in zip(completions, sample_key)
        ]

    trainer = GRPOTrainer(
        model=resolve_model(cfg.model),
        reward_funcs=[length_reward],
        args=grpo_args(cfg, run_dir),
        train_dataset=to_trl_dataset(samples),
        callbacks=[timer],
    )
    trainer.train()


def run_ours(cfg: Any, run_dir: Path, timer: Any) -> None:
    from writing_rl.train import train

    train(cfg.model_copy(update={"output_dir": str(run_dir)}), callbacks=[timer])


ARMS = {"trl": run_trl, "ours": run_ours}


def arm_process(
    arm: str, cfg: Any, run_dir: Path, threads: int, turns: dict, ended: dict, out: Any, profile: Path | None
) -> None:
    """One arm in its own process: train, taking turns with the other arm, and send back the step times."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch
    import transformers

    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    other = next(a for a in ARMS if a != arm)
    profiler = cProfile.Profile() if profile else None
    timer = step_timer(turns[arm], turns[other], ended[other], profiler)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the trainers print their logs; the table goes to stdout
            ARMS[arm](cfg, run_dir, timer)
        timer.wait_for_turn()  # stay idle until the other arm's last step is done
    finally:
        ended[arm].set()  # never leave the other arm waiting, even after a failure
        out.put((arm, timer.steps))
        if profiler is not None and profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(profile / f"{arm}.prof")


def overhead(ours: float, trl: float) -> str:
    return f"{100 * (ours / trl - 1):+.1f}%"


def report(times: dict[str, list[Timing]]) -> list[str]:
    """Per arm: the timed steps' mean and median wall and CPU seconds; then ours against trl, and the
    median over step pairs (trl step k, ours step k, run back to back) of ours / trl."""
    lines = [
        "| arm | steps | mean wall s | median wall s | mean CPU s | median CPU s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    stats: dict[str, list[float]] = {}
    for arm, steps in times.items():
        wall, cpu = [t.wall for t in steps], [t.cpu for t in steps]
        stats[arm] = [statistics.fmean(wall), statistics.median(wall), statistics.fmean(cpu), statistics.median(cpu)]
        lines.append(f"| {arm} | {len(steps)} | " + " | ".join(f"{x:.3f}" for x in stats[arm]) + " |")
    lines.append("| ours vs trl | | " + " | ".join(overhead(o, t) for o, t in zip(stats["ours"], stats["trl"])) + " |")
    pairs = list(zip(times["trl"], times["ours"]))
    paired_wall = statistics.median(o.wall / t.wall for t, o in pairs)
    paired_cpu = statistics.median(o.cpu / t.cpu for t, o in pairs)
    lines.append(
        f"| ours / trl, median over step pairs | | {overhead(paired_wall, 1)} | | {overhead(paired_cpu, 1)} | |"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=TINY, help="'tiny' (a random Llama built here), a model folder or name")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="samples .jsonl with target lengths")
    parser.add_argument("--steps", type=int, default=16, help="steps per arm (the first is warm-up, not counted)")
    parser.add_argument("--batch", type=int, default=8, help="completions per step")
    parser.add_argument("--generations", type=int, default=4, help="GRPO group size")
    parser.add_argument("--completion-tokens", type=int, default=48, help="every completion is this long")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS and torch threads, both arms")
    parser.add_argument("--tiny-hidden", type=int, default=64, help="hidden size of the tiny model")
    parser.add_argument("--tiny-layers", type=int, default=2, help="layers of the tiny model")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write each arm's cProfile of its timed steps here (trl.prof, ours.prof); "
        "profiling slows the steps, so the table of such a run is no overhead measurement",
    )
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is warm-up)")

    started_load = load_average()
    ctx = multiprocessing.get_context("spawn")
    turns = {"trl": ctx.Semaphore(1), "ours": ctx.Semaphore(0)}  # trl takes the first step
    ended = {arm: ctx.Event() for arm in ARMS}
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="step-overhead-") as tmp:
        work = Path(tmp)
        from writing_rl.models import build_tiny_llama

        model = (
            build_tiny_llama(work / "model", args.tiny_hidden, args.tiny_layers) if args.model == TINY else args.model
        )
        cfg = bench_config(args, model)
        procs = [
            ctx.Process(target=arm_process, args=(arm, cfg, work / arm, args.threads, turns, ended, out, args.profile))
            for arm in ARMS
        ]
        for proc in procs:
            proc.start()
        results = dict(out.get() for _ in procs)
        for proc in procs:
            proc.join()
    ended_load = load_average()
    failed = [arm for arm, proc in zip(ARMS, procs) if proc.exitcode or len(results[arm]) != args.steps]
    if failed:
        print(f"error: {', '.join(failed)} did not time {args.steps} steps (see above)", file=sys.stderr)
        return 1
    for arm in ARMS:
        print(f"# {arm}, wall s per step: " + " ".join(f"{t.wall:.3f}" for t in results[arm]), file=sys.stderr)

    print(
        f"# model {args.model}, {args.batch} completions x {args.completion_tokens} tokens per step, "
        f"{args.threads} thread(s), {args.steps - 1} timed steps per arm (after 1 warm-up step), arms taking turns"
    )
    print(f"# load average at start: {started_load}; at end: {ended_load}")
    print("\n".join(report({arm: results[arm][1:] for arm in ARMS})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
