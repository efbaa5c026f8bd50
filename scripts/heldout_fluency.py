"""How fluent each ablation model's held-out answers are: the base model's negative log-likelihood per token of
each answer, given its prompt (lower is more fluent).

A rule metric such as S_l can be gamed with text that is not writing (`scripts/uncounted_words.py`); this
measure cannot be gamed by the trained models, since the base model never saw their rewards. Per model, the mean
over prompts (each prompt's mean over seeds and samples) with a bootstrap 95% interval over prompts.

    python scripts/heldout_fluency.py runs/promotion-rules [--seeds 0] [--model embedded:smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from pathlib import Path

from writing_rl.data import load_samples
from writing_rl.jsonl import read_jsonl
from writing_rl.models import resolve_model


def answer_nll(model_path: str, pairs: list[tuple[str, str]], batch: int = 16) -> list[float | None]:
    """The mean NLL per answer token of each (prompt, answer), the prompt in the model's chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    out: list[float | None] = []
    for start in range(0, len(pairs), batch):
        for prompt, answer in pairs[start : start + batch]:
            head = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            head_ids = tok(head, add_special_tokens=False)["input_ids"]
            answer_ids = tok(answer, add_special_tokens=False)["input_ids"]
            if not answer_ids:
                out.append(None)
                continue
            ids = torch.tensor([head_ids + answer_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(head_ids) - 1 : -1]
            nll = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(answer_ids), reduction="mean")
            out.append(float(nll))
    return out


def interval(values: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder", type=Path, help="an ablation's output folder (heldout/generations.jsonl, ablation.json)"
    )
    parser.add_argument("--seeds", help="comma-separated seeds to read (default: all)")
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct", help="the scoring model (the base)")
    args = parser.parse_args()
    import json

    config = json.loads((args.folder / "ablation.json").read_text(encoding="utf-8"))
    prompts = {s.key: s.prompt_text for s in load_samples(config["ablation"]["heldout"])}
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    rows = [r for r in read_jsonl(args.folder / "heldout" / "generations.jsonl") if seeds is None or r["seed"] in seeds]
    scores = answer_nll(resolve_model(args.model), [(prompts[r["sample"]], r["text"]) for r in rows])
    by_model: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r, nll in zip(rows, scores):
        if nll is not None:
            by_model[r["model"]][r["sample"]].append(nll)
    print(f"| model | NLL per token under {args.model} [95% CI over prompts] | answers |")
    print("| --- | --- | --- |")
    for model, per_prompt in by_model.items():
        means = [sum(v) / len(v) for v in per_prompt.values()]
        low, high = interval(means)
        n = sum(len(v) for v in per_prompt.values())
        print(f"| {model} | {sum(means) / len(means):.2f} [{low:.2f}, {high:.2f}] | {n} |")


if __name__ == "__main__":
    main()
