"""The package's import surface: every public name resolves, and importing one part loads no other."""

from __future__ import annotations

import subprocess
import sys

import writing_rl


def test_every_public_name_resolves_to_its_module():
    for name in writing_rl.__all__:
        value = getattr(writing_rl, name)
        assert value.__name__ == name and value.__module__.startswith("writing_rl.")


def test_the_reward_path_loads_without_critic_generation_or_server():
    """A verl Ray worker imports the reward function: the critic, generators and llama.cpp server stay out."""
    code = (
        "import sys, writing_rl.verl.reward\n"
        "heavy = [m for m in ('writing_rl.critic', 'writing_rl.generation', 'writing_rl.server') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error():
    try:
        writing_rl.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("writing_rl.NoSuchThing resolved")
