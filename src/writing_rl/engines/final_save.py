"""The run's `final/`: a whole model that `AutoModelForCausalLM.from_pretrained` and `vllm serve` load, under
every layout (one process, DDP, FSDP, DeepSpeed ZeRO-3).

Why not `trainer.save_model(final)` alone (transformers 5.25, accelerate 1.16):

- **FSDP.** `Trainer.save_model` writes a model under FSDP only when accelerate's state dict type is
  `FULL_STATE_DICT`. `configs/accelerate/fsdp.yaml` trains with `SHARDED_STATE_DICT`, the right choice for
  checkpoints: each rank writes its own shard (`checkpoint-N/pytorch_model_fsdp_0/`, torch distributed
  checkpoint format, plus `optimizer_0/`), nothing is gathered, and `--resume` loads them back. But with it
  `save_model` writes nothing at all: no weights, no `config.json`, no tokenizer, not even the folder. So
  the final save alone switches the plugin to `FULL_STATE_DICT` (accelerate's own "train with sharded, save
  the final model with full" case): every rank takes part in gathering the whole state dict
  (`Accelerator.get_state_dict`; for FSDP 2 `get_model_state_dict(full_state_dict=True, cpu_offload=True)`,
  which leaves it in rank 0's CPU memory: a 7B model in fp32 needs ~28 GB of host RAM there, once), rank 0
  writes it with `save_pretrained`, and the type is switched back.
- **DeepSpeed ZeRO-3.** `save_model` gathers the 16-bit weights only when
  `stage3_gather_16bit_weights_on_model_save` is on (`zero3_save_16bit_model: true` in
  `configs/accelerate/deepspeed_zero3.yaml`); otherwise it writes a ZeRO checkpoint and `zero_to_fp32.py`
  into `final/`, which vLLM cannot serve. Here the flag is switched on for the final save if a config left
  it off (checkpoints keep whatever the config says: they resume from the ZeRO shards either way).

Either way `final/` gets `save_pretrained`'s files and the processing class (the tokenizer: vLLM serves the
folder as it is). Afterwards the main process checks that the folder holds a config, weights and a
tokenizer, and raises `FinalModelError` naming what is missing, rather than leaving a run that looks
finished but cannot be served.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


class FinalModelError(RuntimeError):
    """`final/` was written but cannot be loaded as a model."""


def save_final_model(trainer: Any, path: str | Path) -> Path:
    """Write the trained model and its tokenizer to `path` as a `from_pretrained` folder. Call it on every
    rank (the gathers are collective); only the main process writes and checks."""
    path = Path(path)
    with _full_state_dict(trainer), _gather_zero3_weights(trainer):
        trainer.save_model(str(path))
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save and (problem := final_model_problem(path)):
        raise FinalModelError(f"{path}: {problem}")
    return path


def final_model_problem(path: Path) -> str | None:
    """What `path` lacks to be loaded by `from_pretrained` and served by vLLM; None if nothing."""
    if not path.is_dir():
        return "no such folder: the final save wrote nothing"
    missing = []
    if not (path / "config.json").is_file():
        missing.append("no config.json")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append("no weights (model.safetensors or pytorch_model.bin, or their index)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append("no tokenizer (tokenizer.json, tokenizer.model or vocab.json)")
    if not missing:
        return None
    found = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
    return f"not a model vLLM can serve: {', '.join(missing)}; found {found}"


@contextlib.contextmanager
def _full_state_dict(trainer: Any) -> Iterator[None]:
    """Under FSDP with sharded state dicts: FULL_STATE_DICT for the duration, the configured type after."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if (
        not getattr(trainer, "is_fsdp_enabled", False)
        or plugin is None
        or "FULL_STATE_DICT" in str(plugin.state_dict_type)
    ):
        yield
        return
    saved = plugin.state_dict_type, plugin.state_dict_config, plugin.optim_state_dict_config
    # with its configs cleared, set_state_dict_type gives the full ones (offloaded to the CPU, on rank 0 only)
    plugin.state_dict_config = plugin.optim_state_dict_config = None
    plugin.set_state_dict_type("FULL_STATE_DICT")
    try:
        yield
    finally:
        plugin.state_dict_type, plugin.state_dict_config, plugin.optim_state_dict_config = saved


@contextlib.contextmanager
def _gather_zero3_weights(trainer: Any) -> Iterator[None]:
    """Under DeepSpeed ZeRO-3 with `stage3_gather_16bit_weights_on_model_save` off: on for the duration."""
    engine = getattr(trainer, "deepspeed", None) or getattr(trainer, "model_wrapped", None)
    zero = getattr(getattr(engine, "_config", None), "zero_config", None)
    if not getattr(trainer, "is_deepspeed_enabled", False) or zero is None or zero.gather_16bit_weights_on_model_save:
        yield
        return
    zero.gather_16bit_weights_on_model_save = True
    try:
        yield
    finally:
        zero.gather_16bit_weights_on_model_save = False
