"""The verl the integration was tested with, checked before any of verl's internals are touched.

The reward manager subclasses verl's `verl.experimental.reward_loop` `NaiveRewardManager` and delegates to its
`run_single` (an experimental API: its module path and its reward-function contract have changed between verl
releases), and `train-verl` composes verl 0.9's trainer config and runs its `TaskRunnerV1`. On another verl
these fail deep inside an import, a Ray worker or hydra; this check stops first and names both versions.

It reads the package metadata (importing verl only where there is none), so it runs in the main environment too.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ..errors import ConfigError

TESTED_RANGE = ">=0.9.0,<0.10"  # verl 0.9.x: tests/verl run against 0.9.1 (the `verl` extra's pin)
TESTED_VERL = SpecifierSet(TESTED_RANGE)
FIX = "install the tested version: pip install 'verl==0.9.1' (the `verl` extra; `make verl-env` builds it)"


def verl_version() -> str | None:
    """The installed verl's version (a source checkout on the path has no package metadata: its `__version__`),
    or None where there is no verl."""
    try:
        return installed_version("verl")
    except PackageNotFoundError:
        pass
    try:
        import verl
    except ImportError:
        return None
    return str(getattr(verl, "__version__", "unknown"))


def check_verl_version(version: str | None = None) -> str:
    """Raise ConfigError unless verl (or the given `version`) is in TESTED_VERL; returns the version."""
    version = version or verl_version()
    if version is None:
        raise ConfigError("verl is not installed here: use the verl environment (`make verl-env`)")
    try:
        tested = Version(version) in TESTED_VERL
    except InvalidVersion:
        tested = False
    if not tested:
        raise ConfigError(
            f"verl {version} is not a version writing-rl's verl integration was tested with (0.9.x: {TESTED_RANGE}); "
            f"its reward manager and launcher rely on verl's experimental reward loop, which changes between "
            f"releases: {FIX}"
        )
    return version
