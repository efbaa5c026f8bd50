"""The judge audit: before spending, can this judge tell the user's own references apart?

`writing-rl judge-audit CONFIG`, `writing-rl check CONFIG --audit` and `train` (its `audit` section)
all run `audit_judge`; docs/judge-audit.md explains the figures and thresholds.
"""

from .metrics import AuditFigures, AuditVerdict, Recommendation
from .runner import AuditError, AuditResult, AuditSettings, audit_judge

__all__ = [
    "AuditError",
    "AuditFigures",
    "AuditResult",
    "AuditSettings",
    "AuditVerdict",
    "Recommendation",
    "audit_judge",
]
