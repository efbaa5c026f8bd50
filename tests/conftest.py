"""Fixtures shared by the training, ablation and learning tests."""

from importlib.metadata import PackageNotFoundError, version

import pytest


def _installed(distribution: str) -> bool:
    """By its metadata: `find_spec("verl")` would find the folder tests/verl itself (a namespace package)."""
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


# tests/verl imports verl and Ray, which live in their own environment (`make test-verl`, the `verl` extra)
collect_ignore = [] if _installed("verl") else ["verl"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer Llama with SmolLM2's real tokenizer (read from the shipped GGUF), random weights."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from writing_rl.server import embedded_gguf_path

    gguf = embedded_gguf_path()
    out = tmp_path_factory.mktemp("tiny-model")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)
