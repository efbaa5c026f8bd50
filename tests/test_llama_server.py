"""writing_rl.llama_server: llama_cpp.server with llama.cpp's extra buffer types off on a CPU with AMX, where its
AMX buffer segfaults when log-probabilities are read (the real server's tests cover the server itself)."""

import pytest

from writing_rl.llama_server import disable_extra_buffer_types, has_amx


def test_amx_is_read_from_the_cpu_flags_and_a_missing_file_means_none(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n")
    assert has_amx(info)
    info.write_text("flags\t\t: fpu avx512f avx512_vnni\n")  # AVX-512 alone is not AMX
    assert not has_amx(info)
    assert not has_amx(tmp_path / "absent")


def test_models_loaded_afterwards_get_no_extra_buffer_types(monkeypatch):
    pytest.importorskip("llama_cpp")
    import llama_cpp.llama as llama

    default = llama.llama_cpp.llama_model_default_params
    monkeypatch.setattr(llama.llama_cpp, "llama_model_default_params", default)  # restored afterwards
    assert default().use_extra_bufts  # llama.cpp's default
    disable_extra_buffer_types()
    params, before = llama.llama_cpp.llama_model_default_params(), default()
    assert not params.use_extra_bufts
    fields = [
        name
        for name, _ in params._fields_
        if name != "use_extra_bufts" and not name.startswith(("progress", "tensor", "kv", "devices"))
    ]
    assert [getattr(params, f) for f in fields] == [getattr(before, f) for f in fields]  # nothing else changes
