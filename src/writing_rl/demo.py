"""The embedded-default walk-through behind `writing-rl demo` / `make demo`.

Until the trainer lands, the "policy" here is each prompt's strongest reference: the demo shows the
real judge server, the soft pairwise reward in both orders, and the dynamic curriculum promoting
prompts whose current reference loses, all on the CPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
import yaml

from .config import CoreConfig
from .curriculum import Curriculum, CurriculumConfig
from .data import load_jsonl
from .judge import EndpointConfig, JudgeConfig, PairwiseJudge
from .reward import PairwiseReward, RewardConfig
from .server import LocalJudgeServer, embedded_gguf_path


def demo_config(base_url: str, run_dir: Path) -> CoreConfig:
    return CoreConfig(
        judge=JudgeConfig(
            endpoint=EndpointConfig(base_url=base_url, model="smollm2-135m-instruct", max_concurrency=2),
            mode="soft",
            chat_template=str(embedded_gguf_path()),
            cache_path=str(run_dir / "judge_cache.sqlite"),
        ),
        reward=RewardConfig(position="both_average"),
        curriculum=CurriculumConfig(schedule="dynamic"),
    )


def run_demo(out: Path, steps: int, samples_path: Any) -> Path:
    samples = load_jsonl(Path(str(samples_path)))
    run_dir = out / time.strftime("demo-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(f"{len(samples)} demo prompts; run folder {run_dir}")
    typer.echo("starting the embedded judge (llama.cpp server, SmolLM2-135M) ...")
    with LocalJudgeServer(log_path=run_dir / "judge_server.log") as server:
        cfg = demo_config(server.base_url, run_dir)
        (run_dir / "config.yaml").write_text(
            yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
        )
        judge = PairwiseJudge(cfg.judge)
        reward = PairwiseReward(judge, cfg.reward)
        curriculum = Curriculum(cfg.curriculum, run_dir / "curriculum.sqlite")
        for step in range(steps):
            items, levels = [], []
            for s in samples:
                level, ref = curriculum.reference(s, step)
                levels.append(level)
                items.append((s.prompt_text, s.references[-1], ref, s.criteria_text))
            started = time.perf_counter()
            results = reward.score_batch_sync(items, progress=True)
            for s, level, r in zip(samples, levels, results):
                new = curriculum.record(s, level, [r.outcome], step)
                shown = "unknown" if r.reward is None else f"{r.reward:.2f} ({r.outcome})"
                typer.echo(f"  step {step} sample {s.id!s:>8}: level {level} reward {shown} -> level {new}")
            typer.echo(
                f"step {step}: {time.perf_counter() - started:.1f}s, mean level "
                f"{curriculum.mean_level(samples, step + 1):.2f}, judge calls {judge.client.stats.requests}, "
                f"cache hits {judge.stats.cache_hits}"
            )
        reward.close()
    s = reward.stats
    typer.echo(f"win {s.win} / tie {s.tie} / loss {s.loss} / unknown {s.unknown}")
    typer.echo(f"results in {run_dir}; inspect with: writing-rl curriculum show {run_dir}")
    return run_dir
