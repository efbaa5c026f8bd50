"""The TRL the GRPO adapter was tested with, checked before a run starts.

The adapter leans on TRL internals: it overrides the private `GRPOTrainer._calculate_rewards` and
`_generate`, and it returns `None` for an unknown verdict, which TRL turns into NaN and leaves out of
the group baseline only from TRL 1.6.0 on (before, an unknown would train as a loss). On a TRL it was
not tested with, a run stops at the start with this explanation rather than train on a changed
contract.
"""

from __future__ import annotations

import inspect
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ..config import ConfigError

TESTED_TRL = SpecifierSet(">=1.16.0,<1.17")  # the `train` extra pins trl==1.16.0
UNKNOWNS_EXCLUDED_FROM = Version("1.6.0")
# The private methods the adapter overrides, with the parameters it calls them with.
OVERRIDDEN = {
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_generate": ["self", "prompts"],
}


def check_trl(version: str | None = None, trainer: type | None = None) -> None:
    """Raise ConfigError unless TRL (or the given `version` / `trainer` class) is one the engine was
    tested with."""
    try:
        version = version or installed_version("trl")
    except PackageNotFoundError:
        raise ConfigError("training needs TRL: pip install 'writing-rl[train]' (trl==1.16.0)") from None
    fix = "install the tested version: pip install 'trl==1.16.0' (the `train` extra)"
    if Version(version) < UNKNOWNS_EXCLUDED_FROM:
        raise ConfigError(
            f"TRL {version} scores a missing (None) reward as a loss; writing-rl needs TRL >= 1.6.0 and was "
            f"tested with {TESTED_TRL}: {fix}"
        )
    if Version(version) not in TESTED_TRL:
        raise ConfigError(
            f"TRL {version} is not a version the writing-rl engine was tested with ({TESTED_TRL}); it overrides "
            f"private GRPOTrainer methods that may have changed: {fix}"
        )
    if trainer is None:
        from trl import GRPOTrainer as trainer
    for name, params in OVERRIDDEN.items():
        method = getattr(trainer, name, None)
        found = list(inspect.signature(method).parameters) if callable(method) else None
        if found != params:
            raise ConfigError(
                f"TRL {version}: GRPOTrainer.{name} is {found or 'missing'}, the engine expects {params}: {fix}"
            )
