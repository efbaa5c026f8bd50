"""What the user looks at after `writing-rl select`: margins, scores per source, what was kept, cost."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .selection import PromptScores


def _plot_margins(path: Path, margins: list[float], kept: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(margins, bins=min(30, max(5, len(margins) // 2)))  # shared by both layers
    ax.hist(margins, bins=bins, color="#9db4d0", label="all prompts")
    if kept:
        ax.hist(kept, bins=bins, color="#2f5d8a", label="kept")
    ax.set_xlabel("margin = best reference score - policy score")
    ax.set_ylabel("prompts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_sources(path: Path, by_source: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(by_source, key=lambda k: statistics.fmean(by_source[k]) if by_source[k] else 0)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names)), 3.5))
    ax.boxplot([by_source[n] for n in names])
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    ax.set_ylabel("critic score (1-10)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(
    out: Path, scored: list[PromptScores], kept: list[PromptScores], cost: dict[str, Any], strategy: str
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, list[float]] = defaultdict(list)
    for s in scored:
        for src, sc in s.reference_scores.items():
            if sc is not None:
                by_source[src].append(sc)
        by_source["policy"].extend(sc for sc in s.policy_scores if sc is not None)
    margins = [s.margin for s in scored if s.margin is not None]
    kept_margins = [s.margin for s in kept if s.margin is not None]
    _plot_margins(out / "margins.png", margins, kept_margins)
    _plot_sources(out / "scores_by_source.png", by_source)
    summary = {
        "strategy": strategy,
        "prompts": len(scored),
        "usable": len(margins),
        "kept": len(kept),
        "unusable_missing_scores": len(scored) - len(margins),
        "margin": {
            "mean": statistics.fmean(margins) if margins else None,
            "kept_min": min(kept_margins) if kept_margins else None,
        },
        "scores_by_source": {
            k: {"n": len(v), "mean": statistics.fmean(v), "stdev": statistics.pstdev(v)}
            for k, v in sorted(by_source.items())
            if v
        },
        "kept_by_lang": dict(Counter(s.record.get("lang", "?") for s in kept)),
        "kept_by_domain": dict(Counter(s.record.get("domain", "?") for s in kept)),
        "kept_ids": [s.record["id"] for s in kept],
        "cost": {
            **cost,
            **(
                {"critic_calls_per_kept_prompt": cost["critic_calls"] / len(kept) if kept else None}
                if "critic_calls" in cost
                else {}
            ),
        },
        "plots": ["margins.png", "scores_by_source.png"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [
        f"# Selection report ({strategy})",
        "",
        f"{summary['kept']} of {summary['prompts']} prompts kept ({summary['unusable_missing_scores']} unusable: missing scores).",
        "",
        "| source | n | mean score | stdev |",
        "| --- | --- | --- | --- |",
        *[f"| {k} | {v['n']} | {v['mean']:.2f} | {v['stdev']:.2f} |" for k, v in summary["scores_by_source"].items()],
        "",
        f"Kept by language: {summary['kept_by_lang']}; by domain: {summary['kept_by_domain']}",
        "",
        "Cost: "
        + ", ".join(f"{k} {v if not isinstance(v, float) else round(v, 2)}" for k, v in summary["cost"].items()),
        "",
        "![margins](margins.png) ![scores](scores_by_source.png)",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return summary
