"""Fixtures for the verl tests (run in the `verl` environment: `make test-verl`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory) -> str:
    """A word-level tokenizer with a chat template, built here and saved as a folder (nothing from a hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    words = ["the", "a", "write", "note", "story", "about", "thanks", "for", "your", "help", "poem", "sea"]
    words += ["good", "mumble", "answer", "reference"]  # what the scripted judge reads
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|end|>",
        additional_special_tokens=specials[3:],
    )
    tok.chat_template = CHAT_TEMPLATE
    out = tmp_path_factory.mktemp("tiny-tokenizer")
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster per test module; its workers import `src` and the test helpers (tests/, tests/verl)."""
    ray = pytest.importorskip("ray")
    here = Path(__file__).parent
    path = os.pathsep.join(str(p.resolve()) for p in (here.parent.parent / "src", here.parent, here))
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )
    yield ray
    ray.shutdown()
