"""What one judged comparison came to for the policy: the one definition every module shares.

A leaf module (it imports nothing of the package), so the reward, the curriculum, the rollout records and
verl's Ray actor all name the same type without importing each other's stacks.
"""

from __future__ import annotations

from typing import Literal

Outcome = Literal["win", "tie", "loss"]
OUTCOMES: tuple[Outcome, ...] = ("win", "tie", "loss")
