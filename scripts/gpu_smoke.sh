#!/usr/bin/env bash
# The GPU smoke kit (docs/scale-out.md, "GPU smoke kit"): a few bf16 GRPO steps of a tiny model against the
# embedded llama.cpp judge on loopback, a checkpoint, a resume, final/ loaded back, and `writing-rl eval`;
# one PASS/FAIL line per stage, exit status 0 only if every stage passed. Needs `pip install
# 'writing-rl[train,local]'` and a CUDA build of PyTorch in the Python it runs with.
#
#   scripts/gpu_smoke.sh                     # on the GPU (the first one visible), bf16
#   scripts/gpu_smoke.sh --device cpu        # the same stages on the CPU, bf16 off (or WRITING_RL_SMOKE_DEVICE=cpu)
#   scripts/gpu_smoke.sh --work-dir DIR      # where the logs go (default work/gpu-smoke-<time>)
#
# PYTHON picks the interpreter (default: .venv/bin/python when there is one, else python3).
set -euo pipefail
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" -m writing_rl.smoke "$@"
