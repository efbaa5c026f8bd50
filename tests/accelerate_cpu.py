"""`writing-rl ARGS...` as one process of an `accelerate launch` on the CPU, honouring an FSDP launch.

usage: accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no \
    tests/accelerate_cpu.py train CONFIG

Why the patch: accelerate 1.16 never turns FSDP on for CPU processes. On a host without an accelerator
`PartialState._prepare_backend` makes a launched process `MULTI_CPU` (gloo) when asked for the CPU, which
`writing-rl` and TRL do there (`train.process_state`, `use_cpu`), or `NO` (no process group at all)
otherwise; and `AcceleratorState.__init__` reads `ACCELERATE_USE_FSDP` and takes the FSDP plugin only for
`MULTI_GPU`, `MULTI_XPU` and the other accelerator types, not `MULTI_CPU`. So the unpatched launch trains
as plain DDP over gloo and the FSDP code paths never run. torch itself shards on the CPU (FSDP 2's
`fully_shard` over a gloo CPU mesh), so this patch does only what accelerate does on a GPU: after
accelerate has set its state up, a `MULTI_CPU` process given an FSDP plugin becomes `FSDP` with that plugin.
Everything after it (accelerate's FSDP 2 wrapping, transformers' sharded checkpoints and their loading on
resume, writing-rl's final save) is the unpatched code. A DeepSpeed launch needs no patch: accelerate
turns DeepSpeed on for CPU processes itself (with `DS_ACCELERATOR=cpu`), so this script leaves it alone.

With `WEIGHTS_AT_START=FILE` in the environment, the whole model as training begins (after a resume has
loaded its checkpoint) is gathered from the ranks and saved to FILE by the main process, so a test can
check what the resume loaded.
"""

import os
import sys

import accelerate.state as state
from accelerate.utils import DistributedType

_init = state.AcceleratorState.__init__


def _init_with_cpu_fsdp(self, mixed_precision=None, cpu=False, dynamo_plugin=None, deepspeed_plugin=None,
                        fsdp_plugin=None, *args, **kwargs):  # fmt: skip
    _init(self, mixed_precision, cpu, dynamo_plugin, deepspeed_plugin, fsdp_plugin, *args, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        if self._mixed_precision != "no":
            fsdp_plugin.set_mixed_precision(self._mixed_precision)
        self.fsdp_plugin = fsdp_plugin
        self.distributed_type = DistributedType.FSDP
        state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


state.AcceleratorState.__init__ = _init_with_cpu_fsdp


def full_weights(model):  # type: ignore[no-untyped-def]
    """The whole state dict of a sharded model (on every rank: the gathers are collective)."""
    import torch
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if any(hasattr(p, "ds_id") for p in model.parameters()):  # ZeRO-3 partitions
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            return {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def save_weights_at_start(path: str) -> None:
    import torch
    from transformers import TrainerCallback

    import writing_rl.train

    class WeightsAtStart(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):  # type: ignore[no-untyped-def]
            weights = full_weights(model)
            if state.is_world_process_zero:
                torch.save(weights, path)

    train = writing_rl.train.train

    def train_with_probe(cfg, resume=False, overwrite=False, callbacks=()):  # type: ignore[no-untyped-def]
        return train(cfg, resume, overwrite, [*callbacks, WeightsAtStart()])

    writing_rl.train.train = train_with_probe


if __name__ == "__main__":
    from writing_rl.cli import main

    if os.environ.get("WEIGHTS_AT_START"):
        save_weights_at_start(os.environ["WEIGHTS_AT_START"])

    sys.argv = ["writing-rl", *sys.argv[1:]]
    main()
