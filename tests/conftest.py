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
    pytest.importorskip("torch")
    from writing_rl.models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-model"), hidden_size=16, layers=2)
