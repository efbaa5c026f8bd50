"""The audit `train` runs before it loads the model: the main process audits, every process learns
whether to go on.

The audit gets a judge of its own on the same endpoint and cache, so the training metrics count none
of its calls. A judge every audit call failed to reach stops the run whatever `on_useless` says: the
first training steps would only find the same and stop after `max_unknown_steps`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..aio import run_sync
from ..data import Sample
from ..engines.rank_metrics import judge_counters
from ..errors import ConfigError
from ..judge.judgement import Judge
from ..judge.pairwise import PairwiseJudge
from ..judge.rules import RuleJudge
from ..reward import RewardConfig
from .report import table, write_audit
from .runner import AuditError, AuditResult, AuditSettings, audit_judge, unreached


class JudgeAuditFailed(ConfigError):
    """The audit stopped the run: a useless judge under `on_useless: stop`, or a judge no call reached."""


def _own_judge(judge: Judge) -> Judge:
    """A judge like `judge` with counters of its own (same endpoint settings and cache)."""
    if isinstance(judge, PairwiseJudge):
        return PairwiseJudge(judge.config, cache=judge.cache)
    if isinstance(judge, RuleJudge):
        return RuleJudge(judge.config)
    return judge


def stop_reason(result: AuditResult, settings: AuditSettings, page: Path) -> str | None:
    """Why the run must stop after this audit, or None."""
    if (failure := unreached(result)) is not None:
        return (
            f"judge audit: no judge call succeeded ({failure}); stopped before loading the model. Check the judge "
            "with `writing-rl check CONFIG`"
        )
    if result.verdict == "useless" and settings.on_useless == "stop":
        return (
            f"judge audit: useless ({result.verdict_reasons[0]}); stopped before loading the model "
            f"(audit.on_useless: stop). Details: {page}"
        )
    return None


def audit_before_training(
    settings: AuditSettings, reward: RewardConfig, judge: Judge, out: Path, samples: list[Sample], state: Any
) -> tuple[AuditResult | None, dict[str, float]]:
    """Audit into `out` on the main process (`state`: accelerate's), print the table, and raise
    `JudgeAuditFailed` on every process when the run must stop. Returns the result (on the main process)
    and what the audit's calls spent (`rank_metrics.judge_counters`, the same on every process), which
    counts toward `judge.budget`."""
    box: list[Any] = [None, {}]
    result = None
    if state.is_main_process:
        auditor = _own_judge(judge)
        try:
            result = run_sync(audit_judge(auditor, reward, samples, settings))
        except AuditError as err:
            print(f"judge audit skipped: {err}", flush=True)
        finally:
            box[1] = judge_counters(auditor) if auditor is not judge else {}
            if auditor is not judge:
                run_sync(auditor.aclose())
        if result is not None:
            page = write_audit(result, out)
            print(table(result), f"judge audit page: {page}", sep="\n", flush=True)
            box[0] = stop_reason(result, settings, page)
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(box, from_process=0)
    if box[0] is not None:
        raise JudgeAuditFailed(box[0])
    return result, box[1]
