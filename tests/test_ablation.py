"""`writing-rl ablation` end to end at a tiny setting: every schedule trains, the held-out table and report appear."""

import json

import pytest
import yaml

pytest.importorskip("trl")

from typer.testing import CliRunner  # noqa: E402

from writing_rl.ablation import AblationConfig, paired_difference_ci, schedule_config  # noqa: E402
from writing_rl.cli import app  # noqa: E402
from writing_rl.curriculum import CurriculumStore  # noqa: E402

pytestmark = pytest.mark.train


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def samples(prefix: str, n: int):
    return [
        {
            "id": f"{prefix}{i}",
            "prompt": f"In about {4 + i} words, write about topic {prefix}{i}.",
            "length": 4 + i,
            "references": [" ".join(["w"] * (12 + i)), " ".join(["w"] * (7 + i)), " ".join(["w"] * (4 + i))],
        }
        for i in range(n)
    ]


def config(tmp_path, tiny_model, **ablation):
    return {
        "model": tiny_model,
        "dataset": write(tmp_path / "train.jsonl", samples("t", 3)),
        "output_dir": str(tmp_path / "ablation"),
        "judge": {"backend": "rule", "rule": "length_fit"},
        "grpo": {
            "num_generations": 2,
            "per_device_train_batch_size": 4,
            "max_completion_length": 8,
            "learning_rate": 1e-3,
            "max_steps": 3,
            "save_steps": 100,
            "report_to": ["none"],
        },
        "ablation": {
            "heldout": write(tmp_path / "heldout.jsonl", samples("h", 4)),
            "samples_per_prompt": 2,
            **ablation,
        },
    }


def test_schedules_map_to_curricula(tmp_path, tiny_model):
    cfg = AblationConfig.model_validate(config(tmp_path, tiny_model))
    assert cfg.ablation.metrics == ["length_fit"]
    assert schedule_config(cfg, "static", 3).milestones == [1, 2]  # 3 steps, 3 levels: evenly spread
    assert schedule_config(cfg, "strongest", 3).schedule == "fixed"
    assert schedule_config(cfg, "none", 3).schedule == "none"


def test_paired_difference_interval_excludes_zero_only_for_a_real_gain():
    base = [50.0, 60.0, 70.0, 80.0, 55.0, 65.0]
    better = [b + 10 + (i % 2) for i, b in enumerate(base)]
    mean, low, high = paired_difference_ci(better, base, resamples=1000, seed=0)
    assert mean == pytest.approx(10.5) and low > 0
    noisy = [b + (10 if i % 2 else -10) for i, b in enumerate(base)]
    _, low, high = paired_difference_ci(noisy, base, resamples=1000, seed=0)
    assert low < 0 < high


def test_ablation_command_trains_each_schedule_and_reports(tmp_path, tiny_model):
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, tiny_model, schedules=["dynamic", "strongest"])))
    result = CliRunner().invoke(app, ["ablation", str(path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "ablation"
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"base", "dynamic", "strongest"}
    for name in ("dynamic", "strongest"):
        row = results["models"][name]["length_fit"]
        assert row["ci95"][0] <= row["mean"] <= row["ci95"][1] and "diff_vs_base" in row
        metrics = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert len([m for m in metrics if "reward" in m]) == 3
    strongest = [json.loads(line) for line in (out / "strongest" / "rollouts.jsonl").read_text().splitlines()]
    assert {r["level"] for r in strongest} == {2}  # the fixed baseline never leaves the strongest reference
    with CurriculumStore(out / "strongest" / "curriculum.sqlite") as store:  # and its store says so
        assert store.levels() == {f'"t{i}"': 2 for i in range(3)} and store.integrity_ok()
    generations = [json.loads(line) for line in (out / "heldout" / "generations.jsonl").read_text().splitlines()]
    assert len(generations) == 3 * 4 * 2  # 3 models x 4 held-out prompts x 2 answers
    page = (out / "report" / "index.html").read_text()
    assert "Δ vs base" in page and "../dynamic/rollouts.jsonl" in page
    assert (out / "report" / "ablation_curves.png").stat().st_size > 10_000
    assert "| dynamic |" in result.output

    again = CliRunner().invoke(app, ["ablation", str(path)])  # finished schedules and answers are reused
    assert again.exit_code == 0 and "reusing" in again.output
    assert json.loads((out / "results.json").read_text())["models"] == results["models"]


@pytest.mark.parametrize(
    "config, rule, n_train, hidden_target",
    [
        ("length_fit", "length_fit", 12, True),
        ("length_fit_stated", "length_fit", 24, False),
        ("keyword_coverage", "keyword_coverage", 24, False),
    ],
)
def test_shipped_ablation_configs_validate_and_their_data_suits_the_rule(config, rule, n_train, hidden_target):
    import re
    from pathlib import Path

    from writing_rl.config import load_config
    from writing_rl.data import load_samples
    from writing_rl.judge import rule_score

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "ablation" / f"{config}.yaml", AblationConfig)
    assert cfg.judge.rule.name == rule and {"dynamic", "static", "none"} <= set(cfg.ablation.schedules)
    train, heldout = load_samples(str(root / cfg.dataset)), load_samples(str(root / cfg.ablation.heldout))
    assert len(train) == n_train and len(heldout) == 16
    assert not {s.prompt_text for s in train} & {s.prompt_text for s in heldout}
    for s in train + heldout:
        # a hidden target must not leak into the prompt, a stated one must be there
        assert bool(re.search(rf"\b{s.length}\b", s.prompt_text)) is not hidden_target, s.id
        scores = [rule_score(rule, r, s) for r in s.references]  # references rise strictly under the rule
        assert scores == sorted(scores) and len(set(scores)) == len(scores), (s.id, scores)
