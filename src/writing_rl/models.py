"""The embedded policy: SmolLM2-135M-Instruct turned from its shipped GGUF into a trainable checkpoint.

transformers can read the GGUF but marks the model quantized and refuses to fine-tune it, so we
build a plain model from its config, load the dequantized weights, and save safetensors once into a
cache folder. Later runs load that folder in seconds. Nothing is downloaded.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

from .errors import ConfigError
from .server import embedded_gguf_path
from .user_cache import cache_dir

EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"
EMBEDDED_MODELS = (EMBEDDED_MODEL,)  # every `embedded:` name a model key takes

# what a local path starts with (the run folders live under runs/); a hub id never does
LOCAL_STARTS = ("/", ".", "~", "runs/", "\\")
# the last part of a run's model folder: `final`, `checkpoint-N` (TRL), `global_stepN` (DeepSpeed, verl)
RUN_FOLDER = re.compile(r"final|checkpoint-\d+|global_step_?\d+")


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


def resolve_model(name_or_path: str, field: str = "model") -> str:
    """`embedded:smollm2-135m-instruct` -> its converted checkpoint folder; anything else unchanged. A name that
    is neither a model folder nor a hub id (`model_name_problem`) is a `ConfigError` naming `field`, before
    transformers spends half a minute asking the hub for it. What exists on disk is left to transformers (a
    tokenizer folder has no config.json)."""
    if not Path(name_or_path).expanduser().exists() and (problem := model_name_problem(name_or_path)):
        raise ConfigError(f"{field}: {problem}")
    if name_or_path == EMBEDDED_MODEL:
        return str(embedded_checkpoint())
    return name_or_path


def looks_like_path(name: str) -> bool:
    """A name written as a local path (which the hub would never resolve): it starts with /, ./, ../, ~ or
    runs/, has more than one slash, ends in one, holds a backslash, ends in a run's model folder (final,
    checkpoint-N), or its first part is a folder here (`outputs/demo` where outputs/ exists)."""
    if name.startswith(LOCAL_STARTS):
        return True
    if "\\" in name or name.count("/") > 1 or name.endswith("/"):
        return True
    parent, slash, last = name.rpartition("/")
    return bool(slash) and (RUN_FOLDER.fullmatch(last) is not None or Path(parent).expanduser().is_dir())


def model_name_problem(name: str) -> str | None:
    """Why `name` can be neither a model folder nor a model on the Hugging Face hub, as `NAME: what to do`;
    None when it can be one. Looks at the disk and the local hub cache only, never at the hub."""
    give = f"give a model folder (a run's final/ or checkpoint-N/), a hub id Org/Model, or {EMBEDDED_MODEL}"
    if not name.strip():
        return f"empty: {give}"
    if name.startswith("embedded:"):
        if name in EMBEDDED_MODELS:
            return None
        close = difflib.get_close_matches(name, EMBEDDED_MODELS, n=1, cutoff=0.0)
        return f"{name}: no such embedded model; the embedded models are {', '.join(EMBEDDED_MODELS)}" + (
            f" (did you mean {close[0]}?)" if close else ""
        )
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return None
        if (path / "final" / "config.json").is_file():
            return f"{name} is a run folder, not a model folder: give {path / 'final'} (or one of its checkpoint-N/)"
        return f"{name} has no config.json: {give}"
    if path.exists():
        return f"{name} is a file, not a model folder: {give}"
    if looks_like_path(name):
        return f"{name}: no such folder{_nearby(path)}: {give}"
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError as err:
        why = " ".join(str(err).split()).replace(f": '{name}'", "")
        return f"{name}: no such folder, and not a hub id ({why.rstrip('.')}): {give}"
    if "/" not in name and not _in_hub_cache(name):
        return f"{name}: no such folder, and a hub id has the form Org/Model (gpt2 is openai-community/gpt2): {give}"
    return None


def _nearby(path: Path) -> str:
    """` (did you mean runs/demo-2/final?)`: the closest name in the folder it would be in, if that exists."""
    parent = path.parent
    if not parent.is_dir() or path.name in ("", "."):
        return ""
    try:
        names = [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    if not close:
        return ""
    near = parent / close[0]
    return f" (did you mean {near / 'final' if (near / 'final' / 'config.json').is_file() else near}?)"


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


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
