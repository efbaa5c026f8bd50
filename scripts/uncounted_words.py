"""How much of each ablation model's held-out text the length score cannot see.

S_l counts words with LongBench-Write's official counter (CJK characters and `[a-zA-Z]+` runs), so a policy
trained on it can pad an answer with tokens it does not count (emoji, other scripts, numbers, symbols) and
still hit the target: a high S_l then says nothing about the text. Per model and seed, this prints the share
of whitespace-separated tokens in which the counter finds no word, with a bootstrap 95% interval over prompts.

    python scripts/uncounted_words.py runs/promotion-rules [--seeds 0]
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from pathlib import Path

from writing_rl.jsonl import read_jsonl
from writing_rl.text_metrics import count_length


def uncounted_share(text: str) -> float | None:
    """The share of the text's whitespace-separated tokens with no word the official counter counts."""
    tokens = text.split()
    if not tokens:
        return None
    return sum(count_length(t) == 0 for t in tokens) / len(tokens)


def interval(values: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an ablation's output folder (heldout/generations.jsonl)")
    parser.add_argument("--seeds", help="comma-separated seeds to read (default: all)")
    args = parser.parse_args()
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    by_model: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in read_jsonl(args.folder / "heldout" / "generations.jsonl"):
        if seeds is not None and row["seed"] not in seeds:
            continue
        if (share := uncounted_share(row["text"])) is not None:
            by_model[row["model"]][row["sample"]].append(share)
    print("| model | tokens the word counter does not see [95% CI over prompts] | answers |")
    print("| --- | --- | --- |")
    for model, prompts in by_model.items():
        means = [sum(v) / len(v) for v in prompts.values()]  # one value per prompt (over seeds and samples)
        low, high = interval(means)
        n = sum(len(v) for v in prompts.values())
        print(f"| {model} | {100 * sum(means) / len(means):.1f}% [{100 * low:.1f}, {100 * high:.1f}] | {n} |")


if __name__ == "__main__":
    main()
