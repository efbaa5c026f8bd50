"""The sharded layouts of docs/scale-out.md (`configs/accelerate/fsdp.yaml`, `deepspeed_zero3.yaml`) train,
checkpoint, resume and leave a `final/` that `from_pretrained` loads, with the weights training ended on.

Two CPU processes under the shipped accelerate configs with `--num_processes 2 --mixed_precision no`
(gloo), the tiny model and a rule judge. A run is stopped by its judge budget after step 2 (a checkpoint, no
`final/`), then continued with `writing-rl train --resume RUN` under the same launch. The weights in
`final/` are compared with those of the last checkpoint, read back from its own shards.

FSDP runs through `tests/accelerate_cpu.py`, which makes accelerate honour FSDP on the CPU (accelerate
1.16 turns it on only for accelerator devices; why, in that file); the DeepSpeed test runs only where
DeepSpeed is installed (the `gpu` extra, or a venv of its own: docs/scale-out.md), with its CPU accelerator.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from writing_rl.engines.final_save import FinalModelError, final_model_problem, save_final_model  # noqa: E402
from writing_rl.server import free_port  # noqa: E402

pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_SCRIPT = Path(__file__).with_name("accelerate_cpu.py")
SAMPLES = [
    ("Write a short poem about the sea.", ["The sea is blue.", "The sea is wide and blue and deep."]),
    ("Write a short note about rain.", ["Rain falls.", "Rain falls softly on the roof at night."]),
    ("Describe a city at dawn.", ["The city wakes.", "The city wakes slowly as light spills over roofs."]),
    ("Tell a tiny story about a cat.", ["A cat slept.", "A cat slept in the sun all afternoon, dreaming."]),
]


def write_run_config(tmp_path: Path, model: str) -> Path:
    """4 steps of one GRPO group of 4 (2 completions per rank), a checkpoint every step; the judge budget
    (one call per completion) stops the run after step 2. The rule judge flips half its verdicts, so the
    rewards of a group differ and every step moves the weights."""
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"id": i, "prompt": p, "references": r, "length": 10}) + "\n" for i, (p, r) in enumerate(SAMPLES)
        ),
        encoding="utf-8",
    )
    cfg = {
        "model": model,
        "dataset": str(samples),
        "output_dir": str(tmp_path / "run"),
        "judge": {"backend": "rule", "rule": {"name": "length_fit", "noise": 0.5}, "budget": {"calls": 8}},
        "reward": {"position": "reference_first"},
        "audit": {"pairs": 0},
        "grpo": {
            "num_generations": 4,
            "per_device_train_batch_size": 2,
            "max_completion_length": 16,
            "learning_rate": 0.01,
            "beta": 0.0,
            "max_steps": 4,
            "save_steps": 1,
            "logging_steps": 1,
            "report_to": ["none"],
            "gradient_checkpointing": False,
            "seed": 0,
        },
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def launch(layout: str, *args: str, options: tuple[str, ...] = (), env: dict[str, str] | None = None):
    """`accelerate launch --config_file configs/accelerate/LAYOUT --num_processes 2 --mixed_precision no
    OPTIONS tests/accelerate_cpu.py ARGS --skip-check`, as docs/scale-out.md runs it on the CPU."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ROOT / "configs" / "accelerate" / layout),
        "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port()),
        *options, str(LAUNCH_SCRIPT), *args, "--skip-check",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)


def at_start(path: Path) -> dict[str, str]:
    return {"WEIGHTS_AT_START": str(path)}  # tests/accelerate_cpu.py saves the weights training begins with


def passed(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def stopped_by_the_budget(result: subprocess.CompletedProcess, run: Path) -> None:
    # each rank exits 3 (the first to stop may take the other down with it: the launch then exits 1)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "stopped after step 2: judge budget calls=8 reached" in output, output[-4000:]
    assert (run / "checkpoint-2").is_dir() and not (run / "checkpoint-3").exists() and not (run / "final").exists()


def final_weights(run: Path) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, info = AutoModelForCausalLM.from_pretrained(run / "final", output_loading_info=True)
    assert not any(info.values()), info  # every weight found, none left over
    assert AutoTokenizer.from_pretrained(run / "final")("a test")["input_ids"]  # vLLM serves the folder as is
    return model.state_dict()


def initial_weights(model: str) -> dict:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model).state_dict()


def untied(weights: dict) -> dict:
    """The weights without the output layer, which the tiny model ties to the input embedding (some saves
    write both, some one)."""
    if "lm_head.weight" in weights:
        assert torch.equal(weights["lm_head.weight"], weights["model.embed_tokens.weight"])
    return {name: value for name, value in weights.items() if name != "lm_head.weight"}


def assert_same(weights: dict, saved: dict) -> None:
    weights, saved = untied(weights), untied(saved)
    assert sorted(weights) == sorted(saved)
    for name, value in weights.items():
        assert torch.equal(value, saved[name].to(value.dtype)), name


def assert_trained(final: dict, initial: dict) -> None:
    moved = [name for name in initial if not torch.equal(final[name], initial[name])]
    assert len(moved) == len(initial), sorted(set(initial) - set(moved))


def metric_steps(run: Path) -> list[int]:
    return [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "reward" in r]


# -- FSDP 2 ------------------------------------------------------------------------------------------------
def fsdp_checkpoint_weights(checkpoint: Path, tmp_path: Path) -> dict:
    """The model of a sharded FSDP checkpoint (`pytorch_model_fsdp_0/`, one shard per rank), gathered in this
    process from the shards themselves."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    out = tmp_path / f"{checkpoint.name}.pt"
    dcp_to_torch_save(checkpoint / "pytorch_model_fsdp_0", out)
    return torch.load(out, weights_only=True)["model"]


def fsdp_launch_problem() -> str | None:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        return "torch has no gloo backend: the two CPU processes cannot talk"
    if importlib.util.find_spec("torch.distributed.fsdp") is None or not hasattr(
        importlib.import_module("torch.distributed.fsdp"), "fully_shard"
    ):
        return "this torch has no FSDP 2 (torch.distributed.fsdp.fully_shard)"
    return None


def test_fsdp_trains_resumes_and_saves_a_loadable_final_model(tmp_path, tiny_model):
    if problem := fsdp_launch_problem():
        pytest.skip(problem)
    config = write_run_config(tmp_path, tiny_model)
    run = tmp_path / "run"
    stopped_by_the_budget(launch("fsdp.yaml", "train", str(config)), run)
    for checkpoint in ("checkpoint-1", "checkpoint-2"):  # sharded: each rank wrote its own part, no full model
        shards = sorted(p.name for p in (run / checkpoint / "pytorch_model_fsdp_0").iterdir())
        assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]
        assert not (run / checkpoint / "model.safetensors").exists()

    start = tmp_path / "start.pt"  # the model as the resumed training begins, gathered from the ranks
    out = passed(launch("fsdp.yaml", "train", "--resume", str(run), "--budget", "calls=none", env=at_start(start)))
    assert "checkpoints: checkpoint-1, checkpoint-2, checkpoint-3, checkpoint-4; final model:" in out
    assert metric_steps(run) == [1, 2, 3, 4]
    initial = initial_weights(tiny_model)
    assert_same(torch.load(start, weights_only=True), fsdp_checkpoint_weights(run / "checkpoint-2", tmp_path))
    assert_trained(torch.load(start, weights_only=True), initial)  # the resume loaded the sharded checkpoint
    final = final_weights(run)
    assert_same(final, fsdp_checkpoint_weights(run / "checkpoint-4", tmp_path))
    assert_trained(final, initial)
    assert final_model_problem(run / "final") is None


# -- DeepSpeed ZeRO-3 --------------------------------------------------------------------------------------
def deepspeed_launch_problem() -> str | None:
    if importlib.util.find_spec("deepspeed") is None:
        return (
            "DeepSpeed is not installed in this environment (it comes with the `gpu` extra; for a CPU run, a venv "
            "of its own as docs/scale-out.md shows)"
        )
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return "no C++ compiler: DeepSpeed's CPU accelerator builds its shared-memory op on first use"
    return None


@pytest.mark.timeout(900)  # the first launch on a machine builds DeepSpeed's CPU op (~2 min)
def test_deepspeed_zero3_trains_resumes_and_saves_a_loadable_final_model(tmp_path, tiny_model):
    if problem := deepspeed_launch_problem():
        pytest.skip(problem)
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from safetensors.torch import load_file

    env = {"DS_ACCELERATOR": "cpu"}
    config = write_run_config(tmp_path, tiny_model)
    run = tmp_path / "run"
    stopped_by_the_budget(launch("deepspeed_zero3.yaml", "train", str(config), env=env), run)
    assert (run / "checkpoint-2" / "global_step2").is_dir()  # ZeRO's partitioned states, what resume reads
    assert (run / "checkpoint-2" / "model.safetensors").is_file()  # the shipped zero3_save_16bit_model: true

    # continued with the 16-bit gather switched off: the checkpoints hold ZeRO shards only, final/ still a model
    off = ("--zero3_save_16bit_model", "false")
    start = tmp_path / "start.pt"
    resume = ("train", "--resume", str(run), "--budget", "calls=none")
    out = passed(launch("deepspeed_zero3.yaml", *resume, options=off, env={**env, **at_start(start)}))
    assert "checkpoints: checkpoint-1, checkpoint-2, checkpoint-3, checkpoint-4; final model:" in out
    assert not (run / "checkpoint-4" / "model.safetensors").exists()
    assert metric_steps(run) == [1, 2, 3, 4]
    initial = initial_weights(tiny_model)
    assert_same(torch.load(start, weights_only=True), load_file(run / "checkpoint-2" / "model.safetensors"))
    assert_trained(torch.load(start, weights_only=True), initial)  # the resume loaded ZeRO's partitions
    final = final_weights(run)
    assert_same(final, get_fp32_state_dict_from_zero_checkpoint(str(run / "checkpoint-4")))
    assert_trained(final, initial)


# -- the save alone ----------------------------------------------------------------------------------------
class FakePlugin:
    def __init__(self, kind: str):
        self.state_dict_type, self.state_dict_config, self.optim_state_dict_config = kind, "sharded", "sharded-optim"

    def set_state_dict_type(self, kind: str) -> None:
        self.state_dict_type = kind
        self.state_dict_config = self.state_dict_config or "full"
        self.optim_state_dict_config = self.optim_state_dict_config or "full-optim"


class FakeTrainer:
    """What `save_final_model` touches of a transformers Trainer; `save_model` writes what the real one would."""

    def __init__(self, plugin: FakePlugin | None, writes: tuple[str, ...]):
        from types import SimpleNamespace

        self.is_fsdp_enabled = plugin is not None
        self.is_deepspeed_enabled = False
        self.accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin), wait_for_everyone=lambda: None)
        self.args = SimpleNamespace(should_save=True)
        self.writes = writes
        self.seen: list[tuple] = []

    def save_model(self, output_dir: str) -> None:
        plugin = self.accelerator.state.fsdp_plugin
        if plugin is not None:
            self.seen.append((plugin.state_dict_type, plugin.state_dict_config, plugin.optim_state_dict_config))
        if plugin is None or plugin.state_dict_type == "FULL_STATE_DICT":  # as transformers does under FSDP
            for name in self.writes:
                Path(output_dir).mkdir(parents=True, exist_ok=True)
                (Path(output_dir) / name).write_text("{}")


SERVABLE = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def test_the_final_save_gathers_a_full_state_dict_under_sharded_fsdp_and_switches_back(tmp_path):
    plugin = FakePlugin("SHARDED_STATE_DICT")
    trainer = FakeTrainer(plugin, SERVABLE)
    save_final_model(trainer, tmp_path / "final")
    assert trainer.seen == [("FULL_STATE_DICT", "full", "full-optim")]
    assert (plugin.state_dict_type, plugin.state_dict_config) == ("SHARDED_STATE_DICT", "sharded")  # for checkpoints
    assert final_model_problem(tmp_path / "final") is None


def test_a_final_folder_that_cannot_be_served_is_an_error_naming_what_is_missing(tmp_path):
    with pytest.raises(FinalModelError, match="no such folder: the final save wrote nothing"):
        save_final_model(FakeTrainer(FakePlugin("SHARDED_STATE_DICT"), ()), tmp_path / "none")
    with pytest.raises(FinalModelError) as err:
        save_final_model(FakeTrainer(None, ("config.json", "zero_to_fp32.py")), tmp_path / "zero")
    assert str(err.value) == (
        f"{tmp_path / 'zero'}: not a model vLLM can serve: no weights (model.safetensors or pytorch_model.bin, "
        "or their index), no tokenizer (tokenizer.json, tokenizer.model or vocab.json); found config.json, "
        "zero_to_fp32.py"
    )


def test_the_shipped_layouts_checkpoint_sharded_and_zero3_checkpoints_hold_a_model():
    """FSDP checkpoints stay sharded (fast, resumable; `save_final_model` gathers the final model alone);
    ZeRO-3 also gathers a 16-bit model into every checkpoint, so each one can be served as it is."""
    layouts = ROOT / "configs" / "accelerate"
    fsdp = yaml.safe_load((layouts / "fsdp.yaml").read_text())
    assert fsdp["fsdp_config"]["fsdp_version"] == 2
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    zero3 = yaml.safe_load((layouts / "deepspeed_zero3.yaml").read_text())["deepspeed_config"]
    assert zero3["zero_stage"] == 3 and zero3["zero3_save_16bit_model"] is True
