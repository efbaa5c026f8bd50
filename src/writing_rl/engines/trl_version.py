"""The TRL versions whose public reward-function contract the GRPO adapter relies on, checked before a
run starts.

The adapter uses only TRL's public API: `trl.GRPOTrainer` as it is, with `WritingReward` as a custom
reward function. What it needs of that contract, and since when TRL has it:

- every rank calls each reward function once per generation batch, at the same point, so the function
  may run collectives (gather the records, broadcast the levels) inside it;
- the `trainer_state` keyword (TRL 0.20), for the step number;
- the `log_metric` keyword (TRL 1.0), to log the writing-rl metrics next to TRL's own;
- a `None` reward is left out of the group baseline and of the logged reward (TRL 1.6.0; before, it was
  summed as 0 and an unknown verdict trained as a loss).

So the adapter accepts TRL 1.6.0 and every later 1.x; a 2.0 may change the contract and is refused until
tested. `tests/test_trl_version.py` checks the contract itself on the installed TRL with a tiny run, so a
1.x that broke it fails the suite rather than a training run.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version

from packaging.version import Version

from ..errors import ConfigError

UNKNOWNS_EXCLUDED_FROM = Version("1.6.0")  # None rewards leave the baseline (huggingface/trl#5902)
NEXT_MAJOR = Version("2.0.0")
SUPPORTED_TRL = f">={UNKNOWNS_EXCLUDED_FROM},<{NEXT_MAJOR}"
TESTED_TRL = "1.16.0"  # what the `train` extra pins


def check_trl(version: str | None = None) -> None:
    """Raise ConfigError unless TRL (or the given `version`) keeps the reward-function contract above."""
    try:
        version = version or installed_version("trl")
    except PackageNotFoundError:
        raise ConfigError(f"training needs TRL: pip install 'writing-rl[train]' (trl=={TESTED_TRL})") from None
    fix = f"install a supported version: pip install 'trl{SUPPORTED_TRL}' (the `train` extra pins {TESTED_TRL})"
    if Version(version) < UNKNOWNS_EXCLUDED_FROM:
        raise ConfigError(
            f"TRL {version} scores a missing (None) reward as a loss; writing-rl needs TRL {SUPPORTED_TRL}: {fix}"
        )
    if Version(version) >= NEXT_MAJOR:
        raise ConfigError(
            f"TRL {version} is a new major version whose reward-function contract writing-rl has not been checked "
            f"against (it supports {SUPPORTED_TRL}): {fix}"
        )
