"""The package's import surface: every public name resolves, and importing one part loads no other."""

from __future__ import annotations

import subprocess
import sys

import writing_rl


def test_every_public_name_resolves_to_its_module():
    for name in writing_rl.__all__:
        value = getattr(writing_rl, name)
        assert value.__name__ == name and value.__module__.startswith("writing_rl.")


def test_the_reward_path_loads_without_generation_or_server():
    """A verl Ray worker imports the reward function: generators and the llama.cpp server stay out. (The pointwise
    critic is part of the reward path since `reward.kind: pointwise`: ~11 ms on top of the judge it shares its
    client with.)"""
    code = (
        "import sys, writing_rl.verl.reward\n"
        "heavy = [m for m in ('writing_rl.generation', 'writing_rl.server') if m in sys.modules]\n"
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


def test_a_run_folder_is_read_without_the_engine_that_wrote_it(tmp_path):
    """`train --resume`, `report` and `curriculum show` find a run's files through `run_layout`, so a machine
    without TRL (a laptop reading a cluster's run) can still read the run folder."""
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "curriculum_snapshot.json").write_text("{}")
    (tmp_path / "checkpoint-8").mkdir()  # killed before its snapshot: not complete
    code = (
        "import sys\nfrom pathlib import Path\nfrom writing_rl.train import last_checkpoint\n"
        f"print(last_checkpoint(Path({str(tmp_path)!r})).name, 'trl' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["checkpoint-4", "False", "False"]


def test_the_version_guards_load_without_the_config_and_judge_stack():
    """The verl guard runs where verl loads our reward manager: it needs `ConfigError`, from the leaf module."""
    code = (
        "import sys, writing_rl.verl.version, writing_rl.engines.trl_version\n"
        "print([m for m in ('writing_rl.config', 'writing_rl.judge') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_train_recipe_still_offers_the_names_callers_import_from_it():
    """`writing_rl.train` is the recipe; its parts live in `writing_rl.training`, and the names that callers
    (the CLI, ablation, tests, benchmarks) import from `writing_rl.train` are the parts' own objects."""
    import writing_rl.train as recipe
    from writing_rl.training import config, judge, run_folder, samples, trl_inputs

    parts = {name: getattr(m, name) for m in (config, judge, run_folder, samples, trl_inputs) for name in dir(m)}
    for name in recipe.__all__:
        assert getattr(recipe, name) is parts.get(name, recipe.train), name
