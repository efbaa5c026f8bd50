"""Where a CPU GRPO step of the shipped ablation goes, and what the cheap knobs buy (issue 23, part 5).

    PYTHONPATH=src python benchmarks/cpu_step.py                 # embedded SmolLM2-135M, 2 rounds
    PYTHONPATH=src python benchmarks/cpu_step.py --rounds 3 --arms fp32,bf16

One step of `configs/ablation/*.yaml` is two pieces of work on the same model: sampling 12 completions of
64 tokens (3 prompts x 4, as TRL's transformers path does: `generate` under `no_grad`, `do_sample`, the
trainer's generation config) and one forward and backward pass over the 12 prompt+completion sequences
with an AdamW step. This times each piece under each arm, arms alternating over `--rounds` so drift in a
shared machine's load falls on all of them; the median round and the sum of each piece's fastest
round (the least disturbed) are reported, with the load average.

Arms: `fp32` (the ablation's setting), `bf16` (autocast to bfloat16: TRL's `bf16: true` on a CPU with
AVX512-BF16 or AMX), `no_cache` (generation without the KV cache: what a gradient-checkpointed model
without TRL's switch would pay), `threads1` (one thread, the cost of a busy second core).
Results: stdout and benchmarks/results/cpu_step.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from writing_rl.models import resolve_model

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "examples" / "ablation" / "hidden_train.jsonl"
ARMS = ("fp32", "bf16", "no_cache", "threads1")


@contextlib.contextmanager
def arm_context(arm: str) -> Iterator[None]:
    threads = torch.get_num_threads()
    if arm == "threads1":
        torch.set_num_threads(1)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=arm == "bf16"):
            yield
    finally:
        torch.set_num_threads(threads)


def batch(tokenizer, n_prompts: int, generations: int) -> dict[str, torch.Tensor]:
    rows = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines()][:n_prompts]
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True
        )
        for r in rows
        for _ in range(generations)
    ]
    return tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")


def time_generation(model, tokenizer, inputs, arm: str, new_tokens: int) -> float:
    torch.manual_seed(0)
    started = time.perf_counter()
    with arm_context(arm), torch.no_grad():
        model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,  # every arm decodes the same number of steps
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=arm != "no_cache",
        )
    return time.perf_counter() - started


def time_update(model, optimizer, inputs, arm: str, new_tokens: int) -> float:
    ids = torch.cat([inputs["input_ids"], torch.randint(0, 1000, (inputs["input_ids"].shape[0], new_tokens))], 1)
    mask = torch.cat([inputs["attention_mask"], torch.ones_like(ids[:, -new_tokens:])], 1)
    started = time.perf_counter()
    with arm_context(arm):
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -new_tokens - 1 : -1]
        logps = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, -new_tokens:, None]).squeeze(-1)
        (-logps.mean()).backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_step.json"))
    args = ap.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    unknown = set(arms) - set(ARMS)
    if unknown:
        raise SystemExit(f"unknown arms {sorted(unknown)}; known: {', '.join(ARMS)}")
    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)  # a real step's work, a negligible change
    inputs = batch(tokenizer, args.prompts, args.generations)
    time_generation(model, tokenizer, inputs, "fp32", 4)  # warm-up: allocator, oneDNN kernels
    times: dict[str, dict[str, list[float]]] = {a: {"generate": [], "update": []} for a in arms}
    loads = []
    for r in range(args.rounds):
        for arm in arms:
            gen = time_generation(model, tokenizer, inputs, arm, args.new_tokens)
            upd = time_update(model, optimizer, inputs, arm, args.new_tokens)
            times[arm]["generate"].append(gen)
            times[arm]["update"].append(upd)
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1}/{args.rounds} {arm:9s} generate {gen:6.2f} s  update {upd:6.2f} s", flush=True)
    summary = {
        arm: {
            "generate_s": statistics.median(t["generate"]),
            "update_s": statistics.median(t["update"]),
            "step_s": statistics.median(g + u for g, u in zip(t["generate"], t["update"])),
            # the least disturbed round of each piece: on a shared machine the median still carries other jobs
            "min_step_s": min(t["generate"]) + min(t["update"]),
        }
        for arm, t in times.items()
    }
    base = summary.get("fp32")
    print(
        f"\nbatch {inputs['input_ids'].shape[0]} x {args.new_tokens} new tokens, prompt {inputs['input_ids'].shape[1]}"
    )
    for arm, s in summary.items():
        ratio = (
            f"  x{base['step_s'] / s['step_s']:.2f} vs fp32 (min: {s['min_step_s']:.2f} s, x{base['min_step_s'] / s['min_step_s']:.2f})"
            if base
            else ""
        )
        print(
            f"{arm:9s} generate {s['generate_s']:6.2f} s  update {s['update_s']:6.2f} s  step {s['step_s']:6.2f} s{ratio}"
        )
    result = {
        "command": "PYTHONPATH=src python benchmarks/cpu_step.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "load_average_during": [round(min(loads), 2), round(max(loads), 2)],
        "batch": int(inputs["input_ids"].shape[0]),
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "new_tokens": args.new_tokens,
        "rounds": times,
        "median": summary,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
