"""Per-sample reference curriculum: schedules and a crash-safe, multi-process state store."""

from .schedule import Curriculum, CurriculumConfig
from .store import CurriculumStore, NotACurriculumStore, RecordResult, SampleState

__all__ = ["Curriculum", "CurriculumConfig", "CurriculumStore", "NotACurriculumStore", "RecordResult", "SampleState"]
