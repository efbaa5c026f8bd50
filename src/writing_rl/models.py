"""The embedded policy: SmolLM2-135M-Instruct turned from its shipped GGUF into a trainable checkpoint.

transformers can read the GGUF but marks the model quantized and refuses to fine-tune it, so we
build a plain model from its config, load the dequantized weights, and save safetensors once into a
cache folder. Later runs load that folder in seconds. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .server import embedded_gguf_path
from .user_cache import cache_dir

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"


def embedded_checkpoint(target: Path | None = None) -> Path:
    """Return a folder holding the trainable SmolLM2 checkpoint, converting it on first use."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    target = target or cache_dir() / "smollm2-135m-instruct"
    marker = target / "writing_rl_source.json"
    source = {"gguf": str(gguf), "size": gguf.stat().st_size}
    if marker.is_file() and json.loads(marker.read_text()) == source:
        return target
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF weights do not fit the model: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / marker.name).write_text(json.dumps(source))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def resolve_model(name_or_path: str) -> str:
    """`embedded:smollm2-135m-instruct` -> its converted checkpoint folder; anything else unchanged."""
    if name_or_path == EMBEDDED_MODEL:
        return str(embedded_checkpoint())
    return name_or_path


def build_tiny_llama(out: str | Path, hidden_size: int = 16, layers: int = 2) -> str:
    """A small Llama with random weights and SmolLM2's real tokenizer (read from the shipped GGUF), saved to
    `out`: a model that trains in seconds on a CPU, for tests and benchmarks, fetched from nowhere."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    gguf = embedded_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
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
