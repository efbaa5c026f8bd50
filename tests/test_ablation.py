"""`writing-rl ablation`: arms (named overrides) × seeds, paired by (seed, prompt), reused on re-run; end to end at
a tiny setting, and the statistics and config checks on their own."""

import json
import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("trl")

from typer.testing import CliRunner  # noqa: E402

from writing_rl import ablation  # noqa: E402
from writing_rl.ablation import (  # noqa: E402
    AblationConfig,
    HeldoutModel,
    generate_heldout,
    narrowed,
    plan_trainings,
    time_left,
)
from writing_rl.cli import app  # noqa: E402
from writing_rl.config import ConfigError, load_config  # noqa: E402
from writing_rl.curriculum import CurriculumStore  # noqa: E402
from writing_rl.data import load_samples  # noqa: E402
from writing_rl.eval.stats import crossed_bootstrap, paired_difference  # noqa: E402

pytestmark = pytest.mark.train
ROOT = Path(__file__).resolve().parents[1]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def samples(prefix: str, n: int):
    return [
        {
            "id": f"{prefix}{i}",
            "prompt": f"In about {4 + i} words, write about topic {prefix}{i}.",
            "length": 4 + i,
            "references": [" ".join(["w"] * (6 + i)), " ".join(["w"] * (5 + i)), " ".join(["w"] * (4 + i))],
        }
        for i in range(n)
    ]


def config(tmp_path, tiny_model, max_steps=3, **ablation):
    return {
        "model": tiny_model,
        "dataset": write(tmp_path / "train.jsonl", samples("t", 3)),
        "output_dir": str(tmp_path / "ablation"),
        "judge": {"backend": "rule", "rule": {"name": "length_fit", "tolerance": 0}},
        "grpo": {
            "num_generations": 2,
            "per_device_train_batch_size": 4,
            "max_completion_length": 8,
            "learning_rate": 0.2,  # large enough for 2 steps to change a tiny model's held-out answers
            "max_steps": max_steps,
            "save_steps": 100,
            "report_to": ["none"],
        },
        "ablation": {
            "heldout": write(tmp_path / "heldout.jsonl", samples("h", 4)),
            "samples_per_prompt": 2,
            **ablation,
        },
    }


def load(tmp_path, data) -> AblationConfig:
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # arms in the order written
    return load_config(path, AblationConfig)


def test_the_older_schedules_list_becomes_arms_and_every_seed_gets_its_run_folder(tmp_path, tiny_model):
    cfg = load(tmp_path, config(tmp_path, tiny_model, schedules=["dynamic", "static", "strongest"], seeds=[3, 5]))
    assert cfg.ablation.metrics == ["length_fit"] and cfg.n_trainings() == 6
    plan = plan_trainings(cfg, tmp_path / "out")
    assert [t.name for t in plan] == [f"{a}/seed{s}" for s in (3, 5) for a in ("dynamic", "static", "strongest")]
    for t in plan:
        assert t.run_dir == tmp_path / "out" / t.arm / f"seed{t.seed}"
        assert t.config.grpo.seed == t.seed and t.config.curriculum.seed == t.seed  # training and sampling seeded
    runs = {t.name: t.config.curriculum for t in plan}
    assert runs["static/seed3"].milestones == [1, 2]  # 3 steps, 3 levels: evenly spread
    assert runs["strongest/seed5"].schedule == "fixed" and runs["strongest/seed5"].fixed_level == -1
    assert runs["dynamic/seed3"].schedule == "dynamic"
    assert [t.config.audit.pairs > 0 for t in plan] == [True] + [False] * 5  # same judge and data: one audit
    assert load(tmp_path, config(tmp_path, tiny_model)).seeds() == [0]  # no seeds: the training config's seed
    assert load(tmp_path, config(tmp_path, tiny_model)).ablation.reference_arm() == "dynamic"


def test_an_arm_is_any_set_of_overrides_and_one_that_does_not_fit_is_named_at_load(tmp_path, tiny_model):
    arms = {
        "dynamic": {},
        "k2": {"curriculum": {"wins_to_promote": 2}},
        "winrate": {"curriculum": {"rule": "win_rate", "window": 4}},
        "other_data": {"dataset": write(tmp_path / "other.jsonl", samples("o", 2)), "grpo": {"max_steps": 2}},
    }
    cfg = load(tmp_path, config(tmp_path, tiny_model, arms=arms, seeds=[0]))
    plan = {t.arm: t.config for t in plan_trainings(cfg, tmp_path / "out")}
    assert plan["k2"].curriculum.wins_to_promote == 2 and plan["k2"].curriculum.rule == "wins"
    assert plan["winrate"].curriculum.rule == "win_rate" and plan["winrate"].curriculum.window == 4
    assert plan["other_data"].dataset.endswith("other.jsonl") and plan["other_data"].grpo.max_steps == 2
    assert plan["dynamic"].grpo.max_steps == 3 and plan["dynamic"].grpo.learning_rate == 0.2  # the base kept
    assert [plan[a].audit.pairs > 0 for a in plan] == [True, False, False, True]  # new data: audited again

    def problem(**ablation) -> str:
        with pytest.raises(ConfigError) as err:
            load(tmp_path, config(tmp_path, tiny_model, **ablation))
        assert len(str(err.value).splitlines()) == 1
        return str(err.value)

    bad = problem(arms={"dynamic": {}, "dynamic_k2": {"curriculum": {"wins_to_promot": 2}}})
    assert "arm 'dynamic_k2'" in bad and "curriculum.wins_to_promot: unknown key; did you mean 'wins_to_promote'" in bad
    bad = problem(arms={"majority": {"curriculum": {"rule": "majority"}}})
    assert "arm 'majority'" in bad and "curriculum.rule" in bad
    assert "grpo.seed is set by the ablation" in problem(arms={"s": {"grpo": {"seed": 4}}})
    assert "ablation.arms.x" in problem(arms={"x": "dynamic"})  # not a mapping of overrides
    assert "arm name 'base'" in problem(arms={"base": {}})
    assert "give `arms` or `schedules`, not both" in problem(arms={"a": {}}, schedules=["none"])
    assert "compare_to: 'dynamic' is not an arm" in problem(arms={"a": {}}, compare_to="dynamic")
    assert "names a seed twice" in problem(seeds=[1, 1])


def test_the_command_line_narrows_seeds_and_arms(tmp_path, tiny_model):
    cfg = load(tmp_path, config(tmp_path, tiny_model, schedules=["dynamic", "none", "static"]))
    small = narrowed(cfg, [1, 2], ["none", "static"])
    assert small.seeds() == [1, 2] and list(small.ablation.arm_overrides()) == ["none", "static"]
    assert small.ablation.reference_arm() == "none"  # dynamic left out: the first arm is the comparison
    with pytest.raises(ConfigError, match="--arms: nope not in the config's arms"):
        narrowed(cfg, None, ["nope"])
    with pytest.raises(ConfigError, match="names a seed twice"):
        narrowed(cfg, [0, 0], None)
    assert narrowed(cfg, None, None, "static").ablation.reference_arm() == "static"  # --compare-to
    with pytest.raises(ConfigError, match="compare_to: 'dynamic' is not an arm"):
        narrowed(cfg, None, ["none", "static"], "dynamic")


def grid(values):
    """{(seed, prompt): value} from rows of per-prompt values, one row per seed."""
    return {(s, f"p{p}"): v for s, row in enumerate(values) for p, v in enumerate(row)}


def test_a_training_is_kept_only_when_the_trainer_closed_it_at_its_last_step(tmp_path, tiny_model):
    t = plan_trainings(load(tmp_path, config(tmp_path, tiny_model, max_steps=4)), tmp_path / "ablation")[0]
    t.run_dir.mkdir(parents=True)
    metrics = t.run_dir / "metrics.jsonl"
    rows = [{"step": s, "reward": 0.5} for s in (2, 4)]  # logged every 2 steps: the last logged step is 4
    write(metrics, rows)
    assert t.state() == "new"  # every step logged, but the trainer never closed it: killed before its end
    write(metrics, [*rows[:1], {"step": 2, "train_runtime": 9.0}])  # a preempted run's closing row, at step 2
    assert t.state() == "new"
    write(metrics, [*rows, {"step": 4, "train_runtime": 9.0}])
    assert t.state() == "kept" and t.done()
    with metrics.open("a") as f:
        f.write('{"step": 5, "rew')  # a line cut by a kill
    assert t.state() == "kept"
    (t.run_dir / "final").mkdir()
    assert t.state() == "finished"


def test_paired_differences_pair_by_seed_and_prompt_not_by_position():
    dynamic = grid([[50, 70, 60, 80], [20, 90, 40, 65], [55, 35, 75, 45]])
    better = {k: v + 10 for k, v in reversed(dynamic.items())}  # the same pairs, stored in another order
    d = paired_difference(better, dynamic, resamples=500)
    assert (d.estimate, d.low, d.high) == pytest.approx((10, 10, 10))  # every pair differs by exactly 10
    unpaired = crossed_bootstrap({k: a - b for k, a, b in zip(dynamic, better.values(), dynamic.values())}, 500)
    assert unpaired.high - unpaired.low > 20  # what pairing by position would have given
    with pytest.raises(ValueError, match="cannot pair"):
        paired_difference({**better, (3, "p0"): 1.0}, dynamic)


def test_the_interval_resamples_seeds_as_well_as_prompts():
    # every prompt scores the same within a seed: all the noise is between seeds
    seed_noise = grid([[40] * 8, [60] * 8, [50] * 8, [70] * 8])
    ci = crossed_bootstrap(seed_noise, 1000)
    assert ci.estimate == 55 and ci.low < 50 and ci.high > 60
    one_seed = crossed_bootstrap(grid([[40, 60, 50, 70, 45, 65]]), 1000)  # one seed: prompts alone
    assert one_seed.low < 55 < one_seed.high and one_seed.high - one_seed.low < 30
    real_gain = paired_difference(
        grid([[b + 10 + (i % 2) for i, b in enumerate([50, 60, 70, 80])]]), grid([[50, 60, 70, 80]]), 1000
    )
    assert real_gain.estimate == pytest.approx(10.5) and real_gain.low > 0
    noise = paired_difference(
        grid([[b + (10 if i % 2 else -10) for i, b in enumerate([50, 60, 70, 80, 55, 65])]]),
        grid([[50, 60, 70, 80, 55, 65]]),
        1000,
    )
    assert noise.low < 0 < noise.high


def test_time_left_comes_from_the_measured_seconds_per_step_and_per_training():
    assert time_left([], 40, 2, 3) is None
    rows = [{"kind": "train", "steps": 10, "seconds": 400, "step_seconds": 30}, {"kind": "heldout", "seconds": 60}]
    line = time_left(rows, 40, 2, 3)  # 40 x 30 s + 2 x (400 - 10 x 30) s + 3 x 60 s = 1580 s
    assert (
        "~26 min" in line and "30.0 s + 2 trainings at 100 s overhead" in line and "3 held-out models at 60 s" in line
    )
    assert "~20 min" in time_left([{"kind": "train", "steps": 10, "seconds": 300}], 40, 2, 3)  # no steady rate: s/step
    shared = time_left(rows, 40, 2, 3, processes=2)  # the trainings split over two ablations: 1400 / 2 + 180 s
    assert "~15 min" in shared and "the trainings shared by 2 processes" in shared


def fake_model(folder: Path, weights: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return str(folder)


@pytest.fixture
def answered(monkeypatch):
    """Held-out generation without a model: each call's answers name the model, seed and call, and the
    calls are recorded as (model, seed)."""
    calls: list[tuple[str, int]] = []

    def answer(path, samples, n, max_new_tokens, temperature, batch, seed, label=None):
        calls.append((Path(path).name, seed))
        return [[f"{label} call {len(calls)} {s.key} {k}" for k in range(n)] for s in samples]

    monkeypatch.setattr(ablation, "generate_answers", answer)
    return calls


def heldout_rows(out: Path) -> dict[tuple[str, int], set[str]]:
    rows = [json.loads(line) for line in (out / "heldout" / "generations.jsonl").read_text().splitlines()]
    by: dict[tuple[str, int], set[str]] = {}
    for r in rows:
        by.setdefault((r["model"], r["seed"]), set()).add(r["text"])
    return by


def test_held_out_answers_are_reused_only_from_the_same_model_and_sampling_settings(tmp_path, tiny_model, answered):
    cfg = load(tmp_path, config(tmp_path, tiny_model, seeds=[0]))
    heldout, out = load_samples(cfg.ablation.heldout), tmp_path / "out"
    base = fake_model(tmp_path / "base", b"base weights")
    arm = fake_model(out / "dynamic" / "seed0" / "final", b"old weights")
    models = [HeldoutModel("base", 0, base), HeldoutModel("dynamic", 0, arm)]
    first = generate_heldout(cfg, models, heldout, out)
    assert answered == [("base", 0), ("final", 0)] and generate_heldout(cfg, models, heldout, out) == first

    # the arm's overrides changed, its folder was deleted and it retrained: new weights, same folder
    import shutil

    shutil.rmtree(arm)
    fake_model(Path(arm), b"retrained weights")
    answered.clear()
    second = generate_heldout(cfg, models, heldout, out)
    assert answered == [("final", 0)]  # the retrained arm answers again, the base's answers are kept
    assert second[("base", 0)] == first[("base", 0)] and second[("dynamic", 0)] != first[("dynamic", 0)]
    assert heldout_rows(out)[("dynamic", 0)] == {t for ts in second[("dynamic", 0)] for t in ts}  # the old ones gone

    answered.clear()  # other sampling settings: every model answers again
    hotter = cfg.model_copy(update={"ablation": cfg.ablation.model_copy(update={"temperature": 0.5})})
    generate_heldout(hotter, models, heldout, out)
    assert answered == [("base", 0), ("final", 0)]

    # rows written before fingerprints were recorded are never reused
    path = out / "heldout" / "generations.jsonl"
    old = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text(
        "".join(json.dumps({k: r[k] for k in ("model", "seed", "sample", "index", "text")}) + "\n" for r in old)
    )
    answered.clear()
    generate_heldout(hotter, models, heldout, out)
    assert answered == [("base", 0), ("final", 0)]


def test_a_narrowed_or_interrupted_rerun_keeps_the_other_models_held_out_answers(
    tmp_path, tiny_model, answered, monkeypatch
):
    cfg = load(tmp_path, config(tmp_path, tiny_model, seeds=[0, 1]))
    heldout, out = load_samples(cfg.ablation.heldout), tmp_path / "out"
    base = fake_model(tmp_path / "base", b"base weights")
    models = [
        HeldoutModel(name, seed, base if name == "base" else fake_model(out / name / f"seed{seed}" / "final", b"w"))
        for seed in (0, 1)
        for name in ("base", "dynamic")
    ]
    generate_heldout(cfg, models, heldout, out)
    full = heldout_rows(out)
    assert set(full) == {("base", 0), ("dynamic", 0), ("base", 1), ("dynamic", 1)}

    answered.clear()  # --seeds 0 after the arm of seed 0 retrained: seed 1's answers stay in the file
    fake_model(out / "dynamic" / "seed0" / "final", b"retrained")
    generate_heldout(cfg, models[:2], heldout, out)
    assert answered == [("final", 0)]
    now = heldout_rows(out)
    assert (
        set(now) == set(full) and now[("base", 1)] == full[("base", 1)] and now[("dynamic", 1)] == full[("dynamic", 1)]
    )
    assert now[("dynamic", 0)] != full[("dynamic", 0)]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # an interruption while the first model that needs answers is answering: nothing cached is lost
    fake_model(out / "dynamic" / "seed1" / "final", b"retrained too")
    monkeypatch.setattr(ablation, "generate_answers", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_heldout(cfg, models, heldout, out)
    assert heldout_rows(out) == now
    assert not (out / "heldout" / "generations.jsonl.tmp").exists()


def runs_of(out: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(out)) for p in out.glob("*/seed*/final"))


def test_ablation_trains_every_arm_from_every_seed_pairs_them_and_reuses_finished_runs(
    tmp_path, tiny_model, monkeypatch
):
    data = config(tmp_path, tiny_model, max_steps=2, schedules=["dynamic", "strongest"], seeds=[0, 1])
    data["ablation"]["metrics"] = ["length_fit", "uncounted_words", "base_nll"]
    data["grpo"]["save_steps"] = 2  # a checkpoint at the last step, kept below, to resume from
    data["ablation"]["keep_checkpoints"] = True
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(data))
    reports_locked = []

    def report_under_the_lock(*args, **kwargs):
        from filelock import FileLock, Timeout

        probe = FileLock(tmp_path / "ablation" / ".heldout.lock")  # as a second process on the folder would
        try:
            probe.acquire(timeout=0)
            probe.release()
            reports_locked.append(False)
        except Timeout:
            reports_locked.append(True)
        return write_report(*args, **kwargs)

    write_report = ablation.write_results
    with monkeypatch.context() as patched:
        patched.setattr(ablation, "write_results", report_under_the_lock)
        result = CliRunner().invoke(app, ["ablation", str(path)])
    assert result.exit_code == 0, result.output
    assert reports_locked == [True]  # processes sharing the folder write the report one at a time
    out = tmp_path / "ablation"
    assert runs_of(out) == ["dynamic/seed0", "dynamic/seed1", "strongest/seed0", "strongest/seed1"]
    assert "2 arms x 2 seeds = 4 trainings of 2 steps" in result.output
    assert "training 1/4 dynamic/seed0" in result.output and "training 4/4 strongest/seed1" in result.output
    assert re.search(r"training 2/4 strongest/seed0: training -> .* time left: ~", result.output)  # after one
    for run in runs_of(out):
        saved = yaml.safe_load((out / run / "config.yaml").read_text())
        assert saved["grpo"]["seed"] == int(run[-1]) and saved["curriculum"]["seed"] == int(run[-1])
        metrics = [json.loads(line) for line in (out / run / "metrics.jsonl").read_text().splitlines()]
        assert len([m for m in metrics if "reward" in m]) == 2
    strongest = [json.loads(line) for line in (out / "strongest/seed1/rollouts.jsonl").read_text().splitlines()]
    assert {r["level"] for r in strongest} == {2}  # the fixed baseline never leaves the strongest reference
    with CurriculumStore(out / "strongest/seed1/curriculum.sqlite") as store:  # and its store says so
        assert store.levels() == {f'"t{i}"': 2 for i in range(3)} and store.integrity_ok()

    generations = [json.loads(line) for line in (out / "heldout" / "generations.jsonl").read_text().splitlines()]
    assert len(generations) == 3 * 2 * 4 * 2  # (base + 2 arms) x 2 seeds x 4 held-out prompts x 2 answers
    base = {seed: [g["text"] for g in generations if g["model"] == "base" and g["seed"] == seed] for seed in (0, 1)}
    assert base[0] != base[1]  # each seed's held-out answers are sampled with their own seed, the base's too
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"base", "dynamic", "strongest"} and results["seeds"] == [0, 1]
    assert results["compare_to"] == "dynamic" and set(results["runs"]) == set(runs_of(out))
    per_prompt = results["per_prompt"]
    for name, row in results["models"].items():
        r = row["length_fit"]
        assert r["ci95"][0] <= r["mean"] <= r["ci95"][1] and set(r["per_seed"]) == {"0", "1"}
        assert ("diff_vs_base" in r) is (name != "base") and ("diff_vs_dynamic" in r) is (name == "strongest")
    pairs = [
        s - d
        for seed in ("0", "1")
        for s, d in zip(per_prompt["strongest"]["length_fit"][seed], per_prompt["dynamic"]["length_fit"][seed])
    ]
    assert any(pairs)  # the arms' answers differ, so pairing them is not trivially 0
    diff = results["models"]["strongest"]["length_fit"]["diff_vs_dynamic"]
    assert diff["mean"] == pytest.approx(sum(pairs) / len(pairs)) and diff["ci95"][0] <= diff["mean"]
    # the measures beside the rule read the same answers: the base model's NLL of each, and the hidden share
    from writing_rl.eval.text_measures import answer_nll, uncounted_share

    heldout = {s.key: s for s in load_samples(data["ablation"]["heldout"])}
    mine = [g for g in generations if (g["model"], g["seed"]) == ("strongest", 1)]
    nll = answer_nll(tiny_model, [(heldout[g["sample"]].prompt_text, g["text"]) for g in mine])
    first = [v for g, v in zip(mine, nll) if g["sample"] == mine[0]["sample"]]
    at = results["heldout_samples"].index(mine[0]["sample"])
    assert per_prompt["strongest"]["base_nll"]["1"][at] == pytest.approx(sum(first) / len(first), rel=1e-4)
    hidden = [uncounted_share(g["text"]) for g in mine if g["sample"] == mine[0]["sample"]]
    assert per_prompt["strongest"]["uncounted_words"]["1"][at] == pytest.approx(sum(hidden) / len(hidden))
    assert results["models"]["base"]["base_nll"]["mean"] > 0
    page = (out / "report" / "index.html").read_text()
    assert "Δ vs dynamic" in page and "Δ vs base" in page and "../dynamic/seed0/rollouts.jsonl" in page
    assert "base_nll [95% CI]" in page and "lower is more fluent" in page
    for png in ("ablation_curves.png", "ablation_heldout.png", "ablation_differences.png"):
        assert (out / "report" / png).stat().st_size > 10_000
    assert "| strongest |" in result.output and "Δ vs dynamic" in result.output
    timings = [json.loads(line) for line in (out / "timings.jsonl").read_text().splitlines()]
    assert all(0 < r["step_seconds"] < r["seconds"] for r in timings if r["kind"] == "train")
    assert [(r["arm"], r["seed"]) for r in timings if r["kind"] == "train"] == [
        ("dynamic", 0),
        ("strongest", 0),
        ("dynamic", 1),
        ("strongest", 1),
    ]
    order = [(r["kind"], r.get("arm", r.get("model")), r["seed"]) for r in timings]
    # a training's held-out answers, and its seed's base model's, come as soon as it ends
    assert order[:4] == [
        ("train", "dynamic", 0),
        ("heldout", "base", 0),
        ("heldout", "dynamic", 0),
        ("train", "strongest", 0),
    ]

    # an interrupted training (here: no final/, its checkpoint kept) resumes; the finished ones are reused
    import shutil

    shutil.rmtree(out / "strongest/seed1/final")
    again = CliRunner().invoke(app, ["ablation", str(path)])
    assert again.exit_code == 0, again.output
    assert again.output.count(": reusing") == 3 and "strongest/seed1: resuming from step 2" in again.output
    assert runs_of(out) == ["dynamic/seed0", "dynamic/seed1", "strongest/seed0", "strongest/seed1"]
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["models"]["dynamic"] == results["models"]["dynamic"]  # reused, and its answers too
    for model in [out / "dynamic/seed0/final", *(out / "dynamic/seed0").glob("checkpoint-*")]:
        shutil.rmtree(model)  # a finished training's models deleted, its answers cached
    pruned = CliRunner().invoke(app, ["ablation", str(path)])
    assert pruned.exit_code == 0, pruned.output
    assert "dynamic/seed0: reusing its cached answers (model gone)" in pruned.output, pruned.output
    assert "training ->" not in pruned.output and "resuming" not in pruned.output
    assert json.loads((out / "results.json").read_text())["models"] == rerun["models"]

    plan = CliRunner().invoke(app, ["ablation", str(path), "--dry-run", "--seeds", "0,1,2"])
    assert plan.exit_code == 0, plan.output
    assert "2 arms x 3 seeds = 6 trainings of 2 steps (12 steps); 4 finished, 0 to resume, 2 to train" in plan.output
    assert "seed 2: dynamic new, strongest new" in plan.output and "time left: ~" in plan.output
    assert not (out / "dynamic" / "seed2").exists()  # a dry run trains nothing

    changed = CliRunner().invoke(app, ["ablation", str(path), "--max-steps", "3"])
    assert changed.exit_code == 2 and "dynamic/seed0 with another config (grpo.max_steps: 2 -> 3)" in changed.output

    # the results outlive the models: what --keep-results copies is all a report needs
    kept = tmp_path / "kept"
    cached = (out / "heldout" / "base_nll.jsonl").read_text().splitlines()
    assert len(cached) >= len({(g["sample"], g["text"]) for g in generations})  # each answer scored by the base

    def scored_again(*args, **kwargs):
        raise AssertionError("an answer an earlier report scored was scored again")

    stopped = out / "dynamic" / "seed7"  # a training stopped part-way, outside this plan: nothing worth keeping
    stopped.mkdir()
    write(stopped / "metrics.jsonl", [{"step": 1, "reward": 0.5}])
    (stopped / "config.yaml").write_text("{}")
    with monkeypatch.context() as patched:
        patched.setattr(ablation, "answer_nll", scored_again)
        keeping = CliRunner().invoke(app, ["ablation", str(path), "--report-only", "--keep-results", str(kept)])
    assert keeping.exit_code == 0 and "kept 17 files of the results" in keeping.output, keeping.output
    assert json.loads((out / "results.json").read_text())["models"] == rerun["models"]  # the same, from the cache
    assert not (kept / "heldout" / "base_nll.jsonl").exists()  # keyed by this machine's model path: not kept
    assert not (kept / "dynamic" / "seed7").exists()
    assert sum(f.stat().st_size for f in kept.rglob("*")) < 500_000  # none of the models (16 files + one audit)
    assert len(list(kept.glob("*/seed*/curriculum.sqlite"))) == 4  # each training's promotions
    report = CliRunner().invoke(app, ["ablation", str(path), "--output-dir", str(kept), "--report-only"])
    assert report.exit_code == 0, report.output
    assert "training" not in report.output and not list(kept.glob("*/seed*/final"))  # nothing trained
    assert json.loads((kept / "results.json").read_text())["models"] == rerun["models"]
    assert (kept / "report" / "ablation_curves.png").is_file()
    other = CliRunner().invoke(
        app, ["ablation", str(path), "--output-dir", str(kept), "--report-only", "--max-steps", "3"]
    )
    assert other.exit_code == 2 and "with another config (grpo.max_steps: 2 -> 3)" in other.output  # not reported
    rows = [json.loads(line) for line in (kept / "heldout" / "generations.jsonl").read_text().splitlines()]
    write(kept / "heldout" / "generations.jsonl", [r for r in rows if (r["model"], r["seed"]) != ("strongest", 1)])
    short = CliRunner().invoke(app, ["ablation", str(path), "--output-dir", str(kept), "--report-only"])
    assert short.exit_code == 2 and "for strongest seed 1;" in short.output
    # without --report-only, a training whose model is gone and whose answers are not cached is named at once
    stale = CliRunner().invoke(app, ["ablation", str(path), "--output-dir", str(kept)])
    assert stale.exit_code == 2 and "training ->" not in stale.output, stale.output
    assert "for strongest seed 1: these trainings ran to their end but their models (final/) are gone" in stale.output


def test_shipped_promotion_rules_config_plans_seven_arms_over_three_seeds():
    cfg = load_config(ROOT / "configs" / "ablation" / "promotion_rules.yaml", AblationConfig)
    trainings = {t.name: t.config for t in plan_trainings(cfg, Path("/nonexistent"))}
    plan = {name: c.curriculum for name, c in trainings.items()}
    assert cfg.seeds() == [0, 1, 2] and len(plan) == cfg.n_trainings() == 21
    kinds = {name: c.reward.kind for name, c in trainings.items()}
    assert {n for n, k in kinds.items() if k == "pointwise"} == {f"pointwise/seed{s}" for s in (0, 1, 2)}
    assert plan["pointwise/seed0"].schedule == "none"
    assert cfg.dataset.endswith("hidden_train.jsonl") and cfg.ablation.reference_arm() == "dynamic"
    assert (plan["dynamic/seed0"].schedule, plan["dynamic/seed0"].rule, plan["dynamic/seed0"].wins_to_promote) == (
        "dynamic",
        "wins",
        1,
    )
    assert plan["dynamic_k2/seed1"].wins_to_promote == 2 and plan["dynamic_winrate/seed2"].rule == "win_rate"
    assert plan["none/seed0"].schedule == "none" and plan["strongest/seed0"].schedule == "fixed"
    assert plan["static/seed0"].milestones == [11, 21]  # 32 steps, 3 levels


@pytest.mark.parametrize(
    "config, rule, n_train, hidden_target",
    [
        ("length_fit", "length_fit", 12, True),
        ("length_fit_stated", "length_fit", 24, False),
        ("keyword_coverage", "keyword_coverage", 24, False),
        ("promotion_rules", "length_fit", 12, True),
    ],
)
def test_shipped_ablation_configs_validate_and_their_data_suits_the_rule(config, rule, n_train, hidden_target):
    from writing_rl.data import load_samples
    from writing_rl.judge import rule_score

    cfg = load_config(ROOT / "configs" / "ablation" / f"{config}.yaml", AblationConfig)
    arms = cfg.ablation.arm_overrides()
    assert cfg.judge.rule.name == rule and {"dynamic", "static", "none"} <= set(arms)
    train, heldout = load_samples(str(ROOT / cfg.dataset)), load_samples(str(ROOT / cfg.ablation.heldout))
    assert len(train) == n_train and len(heldout) == 16
    assert not {s.prompt_text for s in train} & {s.prompt_text for s in heldout}
    for s in train + heldout:
        # a hidden target must not leak into the prompt, a stated one must be there
        assert bool(re.search(rf"\b{s.length}\b", s.prompt_text)) is not hidden_target, s.id
        scores = [rule_score(rule, r, s) for r in s.references]  # references rise strictly under the rule
        assert scores == sorted(scores) and len(set(scores)) == len(scores), (s.id, scores)
