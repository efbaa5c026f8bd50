"""The verl version guard: a verl outside the tested range is named, with the range, before any of verl's
experimental reward loop is imported (the reward module) or any of verl's trainer runs (launch: test_launch)."""

from __future__ import annotations

import importlib
import sys

import pytest

from writing_rl.config import ConfigError
from writing_rl.verl import version
from writing_rl.verl.version import TESTED_VERL, check_verl_version

pytest.importorskip("verl.experimental.reward_loop")


def test_the_installed_verl_is_the_tested_one():
    assert check_verl_version() == version.verl_version() and version.verl_version() in TESTED_VERL


@pytest.mark.parametrize("accepted", ["0.9.0", "0.9.1", "0.9.7"])
def test_any_0_9_release_passes(accepted):
    assert check_verl_version(accepted) == accepted


@pytest.mark.parametrize("refused", ["0.8.5", "0.10.0", "1.0.0", "0.10.0.dev0", "unknown"])
def test_other_versions_are_named_with_the_tested_range(refused):
    with pytest.raises(ConfigError) as err:
        check_verl_version(refused)
    message = str(err.value)
    assert message.startswith(f"verl {refused} is not a version") and ">=0.9.0,<0.10" in message
    assert "pip install 'verl==0.9.1'" in message and "\n" not in message


def test_no_verl_is_named(monkeypatch):
    monkeypatch.setattr(version, "verl_version", lambda: None)
    with pytest.raises(ConfigError, match="verl is not installed here: use the verl environment"):
        check_verl_version()


def test_loading_the_reward_manager_under_another_verl_names_both_versions(monkeypatch):
    """verl loads our manager by module path in its reward workers: an untested verl is named there, instead
    of an ImportError or AttributeError from inside `verl.experimental`."""
    monkeypatch.setattr(version, "installed_version", lambda name: "0.10.2")
    monkeypatch.delitem(sys.modules, "writing_rl.verl.reward_manager", raising=False)  # restored afterwards
    with pytest.raises(ConfigError, match=r"verl 0\.10\.2 is not a version .*\(0\.9\.x: >=0\.9\.0,<0\.10\)"):
        importlib.import_module("writing_rl.verl.reward_manager")
