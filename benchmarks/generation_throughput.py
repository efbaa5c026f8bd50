"""Local `eval` generation throughput: one prompt at a time (the old path) against left-padded batches.

    PYTHONPATH=src python benchmarks/generation_throughput.py                       # embedded SmolLM2, CPU
    PYTHONPATH=src python benchmarks/generation_throughput.py --batch-sizes 1,4,8,16 --prompts 32

Prompts are the first `--prompts` LongBench-Write prompts from ../shared/data (or the demo samples when
that is absent), each answered with `--max-tokens` new tokens, greedily, through `Generator.generate_many`
with a fresh store per arm, so nothing is reused. Arms alternate over `--rounds` rounds so drift in a
shared machine's load falls on all of them; the median round is reported. `batch_size 1` is the old
path's work (one prompt, one `generate` call). Answers of all arms are compared: left padding must not
change a greedy answer (beyond float noise, counted as `differing`). Results: stdout and
benchmarks/results/generation_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from writing_rl.aio import run_sync
from writing_rl.generation import GenerationStore, Generator, GeneratorConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "longbench_write_en.jsonl"
DEMO = ROOT / "src" / "writing_rl" / "assets" / "demo_samples.jsonl"


def prompts(n: int) -> list[str]:
    if SHARED.is_file():
        rows = [json.loads(line) for line in SHARED.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [r["prompt"] for r in rows[:n]]
    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["prompt"] for r in rows[:n]]


def one_arm(model: str, texts: list[str], batch_size: int, max_tokens: int, folder: Path) -> tuple[float, list]:
    cfg = GeneratorConfig(
        name="bench", transformers_model=model, temperature=0, max_tokens=max_tokens, batch_size=batch_size
    )
    generator = Generator(cfg, GenerationStore(folder / f"b{batch_size}-{time.monotonic_ns()}.sqlite"))
    run_sync(generator.generate_many(texts[:1], desc=None))  # loads the model; not timed
    start = time.perf_counter()
    answers = run_sync(generator.generate_many(texts[1:], desc=None))
    return time.perf_counter() - start, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=17, help="one is used to load the model, the rest are timed")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "generation_throughput.json")
    args = ap.parse_args()
    texts = prompts(args.prompts)
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    seconds: dict[int, list[float]] = {b: [] for b in sizes}
    answers: dict[int, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for b in sizes:
                took, answers[b] = one_arm(args.model, texts, b, args.max_tokens, Path(tmp))
                seconds[b].append(took)
                print(f"round {r + 1}: batch {b}: {took:.1f} s for {len(texts) - 1} answers", flush=True)
    base = sizes[0]
    result = {
        "command": "python benchmarks/generation_throughput.py " + " ".join(f"{k}={v}" for k, v in vars(args).items()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "answers": len(texts) - 1,
        "max_tokens": args.max_tokens,
        "arms": {
            str(b): {
                "median_s": statistics.median(seconds[b]),
                "answers_per_s": (len(texts) - 1) / statistics.median(seconds[b]),
                "speedup_vs_first": statistics.median(seconds[base]) / statistics.median(seconds[b]),
                "differing_answers_vs_first": sum(x != y for x, y in zip(answers[b], answers[base])),
                "rounds_s": seconds[b],
            }
            for b in sizes
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["arms"], indent=2))


if __name__ == "__main__":
    main()
