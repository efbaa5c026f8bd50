"""`python -m writing_rl.llama_server ARGS...`: llama-cpp-python's OpenAI-compatible server (`llama_cpp.server`,
same arguments), with llama.cpp's extra CPU buffer types off on a CPU with AMX.

llama.cpp loads weights into an AMX buffer type on such a CPU (one of its "extra buffer types", for repacked
weights), and reading logits back from it segfaults (llama.cpp issue #11115: the AMX buffer has no
`get_tensor`): the server dies on the first request for log-probabilities, which the judge's soft verdicts
need. Without extra buffer types the weights stay in plain CPU buffers; for the embedded 135M judge that
costs nothing measurable. On other CPUs nothing changes.
"""

from __future__ import annotations

import runpy
from pathlib import Path


def has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        return "amx_int8" in cpuinfo.read_text(encoding="utf-8", errors="replace").split()
    except OSError:  # not Linux: llama.cpp's AMX code is Linux-only too
        return False


def disable_extra_buffer_types() -> None:
    """Every model llama-cpp-python loads from now on in this process gets `use_extra_bufts = False`."""
    import llama_cpp.llama as llama

    default = llama.llama_cpp.llama_model_default_params

    def params():  # type: ignore[no-untyped-def]
        p = default()
        p.use_extra_bufts = False
        return p

    llama.llama_cpp.llama_model_default_params = params


def main() -> None:
    if has_amx():
        disable_extra_buffer_types()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
