"""`writing-rl ablation CONFIG`: the paper's scheduling ablation, small enough for one CPU.

The same policy, seed, prompts and steps are trained once per schedule (`dynamic`, `static`, `none`,
and `strongest`: always the strongest reference), then the base model and every trained model write
answers to held-out prompts, scored with known-truth metrics (the rule judge's own, and LongBench-Write's
length score S_l). Each model's mean comes with a bootstrap 95% interval over prompts, and so does its
paired difference from the base model. Everything lands in `output_dir`: one run folder per schedule,
`heldout/generations.jsonl`, `results.json`, and the report (`report/index.html`).

Re-running the same command reuses every finished schedule (`<schedule>/final`), resumes one that
was interrupted after a checkpoint, and re-generates only what is missing.
"""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from .config import ConfigError
from .curriculum import CurriculumConfig
from .data import Sample, load_samples
from .eval.stats import bootstrap_ci
from .jsonl import read_jsonl, write_jsonl
from .judge.rules import RuleName, rule_score
from .models import resolve_model
from .train import TrainConfig, last_checkpoint, train

Schedule = Literal["dynamic", "static", "none", "strongest"]
BASE = "base"


class AblationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedules: list[Schedule] = Field(default_factory=lambda: ["dynamic", "static", "none", "strongest"])
    static_milestones: list[int] | None = Field(
        None, description="static: steps at which every sample moves up; default: evenly spread over max_steps"
    )
    heldout: str = Field(..., description="JSONL of held-out samples (never trained on)")
    samples_per_prompt: int = Field(4, ge=1, description="answers per held-out prompt and model")
    max_new_tokens: int | None = Field(None, ge=1, description="default: grpo.max_completion_length")
    temperature: float = Field(1.0, ge=0, description="held-out sampling temperature; 0 = greedy")
    metrics: list[RuleName] | None = Field(None, description="default: the rule judge's rule, then length_fit")
    batch_size: int = Field(32, ge=1, description="held-out generation batch")
    bootstrap_resamples: int = Field(2000, ge=100)
    seed: int = 0


class AblationConfig(TrainConfig):
    """A training config (shared by every schedule) plus the `ablation` section."""

    ablation: AblationSettings

    @model_validator(mode="after")
    def _metrics_known(self) -> AblationConfig:
        if self.ablation.metrics is None:
            rule = [self.judge.rule.name] if self.judge.rule is not None else []
            self.ablation.metrics = list(dict.fromkeys([*rule, "length_fit"]))
        return self


def schedule_config(cfg: AblationConfig, schedule: Schedule, n_levels: int) -> CurriculumConfig:
    base = cfg.curriculum.model_dump()
    if schedule == "strongest":
        return CurriculumConfig.model_validate({**base, "schedule": "fixed", "fixed_level": -1})
    if schedule == "static":
        steps = cfg.grpo.max_steps
        milestones = cfg.ablation.static_milestones or [max(1, round(steps * k / n_levels)) for k in range(1, n_levels)]
        return CurriculumConfig.model_validate({**base, "schedule": "static", "milestones": milestones})
    return CurriculumConfig.model_validate({**base, "schedule": schedule})


def train_schedules(cfg: AblationConfig, out: Path, samples: list[Sample]) -> dict[str, Path]:
    """One run folder per schedule; finished ones are reused, interrupted ones resumed."""
    n_levels = max(len(s.references) for s in samples)
    runs = {}
    for i, schedule in enumerate(cfg.ablation.schedules, 1):
        run_dir = out / schedule
        runs[schedule] = run_dir
        if (run_dir / "final").is_dir():
            print(f"[ablation] {schedule} ({i}/{len(cfg.ablation.schedules)}): reusing {run_dir / 'final'}", flush=True)
            continue
        resume = last_checkpoint(run_dir) is not None
        if run_dir.exists() and not resume:
            shutil.rmtree(run_dir)  # a start that failed before its first checkpoint: nothing to keep
        print(f"[ablation] {schedule} ({i}/{len(cfg.ablation.schedules)}): training -> {run_dir}", flush=True)
        run_cfg = TrainConfig.model_validate(
            {
                **cfg.model_dump(exclude={"ablation"}),
                "output_dir": str(run_dir),
                "curriculum": schedule_config(cfg, schedule, n_levels).model_dump(),
                # every schedule has the same judge and data: the first audits it, the others need not
                "audit": cfg.audit.model_dump() if i == 1 else {**cfg.audit.model_dump(), "pairs": 0},
            }
        )
        train(run_cfg, resume=resume)
        gc.collect()
    return runs


def generate_answers(
    model_path: str,
    samples: list[Sample],
    n: int,
    max_new_tokens: int,
    temperature: float,
    batch: int,
    seed: int,
    label: str | None = None,
) -> list[list[str]]:
    """`n` answers per prompt from a transformers checkpoint, batched with left padding, seeded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": s.prompt_text}], tokenize=False, add_generation_prompt=True
        )
        for s in samples
    ]
    jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
    answers: list[list[str]] = [[] for _ in samples]
    torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}
    for start in tqdm(
        range(0, len(jobs), batch), desc=f"held-out answers ({label or Path(model_path).name})", unit="batch"
    ):
        chunk = jobs[start : start + batch]
        enc = tok([p for _, p in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **sampling)
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for (i, _), text in zip(chunk, texts):
            answers[i].append(text)
    del model
    gc.collect()
    return answers


def paired_difference_ci(
    model: list[float], base: list[float], resamples: int, seed: int
) -> tuple[float, float, float]:
    """Mean of per-prompt differences with a percentile bootstrap 95% interval (prompts resampled)."""
    ci = bootstrap_ci([m - b for m, b in zip(model, base)], resamples=resamples, seed=seed)
    return ci.estimate, ci.low, ci.high


def score_heldout(
    answers: dict[str, list[list[str]]], samples: list[Sample], metrics: list[str], resamples: int, seed: int
) -> dict[str, Any]:
    """Per model and metric: mean over prompts (each prompt's answers averaged first) with its 95% CI,
    and the paired difference from the base model with its 95% CI."""
    per_prompt: dict[str, dict[str, list[float]]] = {}
    for model, by_prompt in answers.items():
        per_prompt[model] = {
            m: [sum(rule_score(m, a, s) for a in ans) / len(ans) for s, ans in zip(samples, by_prompt)] for m in metrics
        }
    table: dict[str, Any] = {}
    for model, scores in per_prompt.items():
        row = {}
        for m, values in scores.items():
            ci = bootstrap_ci(values, resamples=resamples, seed=seed)
            row[m] = {"mean": ci.estimate, "ci95": [ci.low, ci.high]}
            if model != BASE and BASE in per_prompt:
                d, lo, hi = paired_difference_ci(values, per_prompt[BASE][m], resamples, seed)
                row[m]["diff_vs_base"] = {"mean": d, "ci95": [lo, hi]}
        table[model] = row
    return {"models": table, "per_prompt": per_prompt}


def run_ablation(cfg: AblationConfig) -> dict[str, Any]:
    """Train every schedule, evaluate base + trained models on the held-out prompts, write the report."""
    from .eval.ablation_report import write_ablation_report
    from .train import load_train_samples

    a = cfg.ablation
    out = Path(cfg.output_dir)
    samples = load_train_samples(cfg)
    try:
        heldout = load_samples(a.heldout)
    except FileNotFoundError:
        raise ConfigError(f"held-out file not found: {a.heldout}") from None
    train_keys = {s.prompt_text for s in samples}
    if overlap := [s.id for s in heldout if s.prompt_text in train_keys]:
        raise ConfigError(f"held-out prompts also in the training set: {overlap[:5]}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2), encoding="utf-8")
    runs = train_schedules(cfg, out, samples)

    gen_path = out / "heldout" / "generations.jsonl"
    cached = (
        {(r["model"], r["sample"], r["index"]): r["text"] for r in read_jsonl(gen_path)} if gen_path.is_file() else {}
    )
    models = {BASE: resolve_model(cfg.model), **{s: str(p / "final") for s, p in runs.items()}}
    answers: dict[str, list[list[str]]] = {}
    rows = []
    max_new = a.max_new_tokens or cfg.grpo.max_completion_length
    for name, path in models.items():
        have = [[cached.get((name, s.key, k)) for k in range(a.samples_per_prompt)] for s in heldout]
        if any(t is None for ts in have for t in ts):
            print(f"[ablation] held-out answers: {name} ({path})", flush=True)
            have = generate_answers(
                path, heldout, a.samples_per_prompt, max_new, a.temperature, a.batch_size, a.seed, label=name
            )
        answers[name] = have  # type: ignore[assignment]
        rows += [
            {"model": name, "sample": s.key, "index": k, "text": t}
            for s, ts in zip(heldout, have)
            for k, t in enumerate(ts)
        ]
        write_jsonl(gen_path, rows)  # after each model, so an interrupted evaluation keeps what it has
    assert a.metrics is not None
    results = score_heldout(answers, heldout, a.metrics, a.bootstrap_resamples, a.seed)
    results.update(
        schedules=a.schedules,
        metrics=a.metrics,
        heldout_prompts=len(heldout),
        samples_per_prompt=a.samples_per_prompt,
        runs={s: str(p) for s, p in runs.items()},
    )
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    results["report"] = str(write_ablation_report(out, results))
    return results


def results_table(results: dict[str, Any]) -> str:
    """Markdown table: each model's held-out mean [95% CI] and its difference from the base model."""
    metrics = results["metrics"]
    head = "| model | " + " | ".join(f"{m} | Δ vs base [95% CI]" for m in metrics) + " |"
    lines = [head, "|" + " --- |" * (1 + 2 * len(metrics))]
    for model, row in results["models"].items():
        cells = []
        for m in metrics:
            r = row[m]
            cells.append(f"{r['mean']:.1f} [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]")
            d = r.get("diff_vs_base")
            cells.append("–" if d is None else f"{d['mean']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
