"""Client-side chat templates, for reading verdict log-probabilities through `/v1/completions`.

The soft verdict needs the judge *led to* the verdict position (the assistant turn already holding
`[[`), which the chat API cannot express portably. So we render the chat ourselves with the
judge model's own template (from its GGUF metadata, a Hugging Face tokenizer folder, or Jinja text)
and send the raw prompt to the completions endpoint, which vLLM, SGLang and llama.cpp all serve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Template
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _raise(message: str) -> None:
    raise TemplateError(message)


@lru_cache(maxsize=16)
def _compiled(source: str) -> Template:
    """Compiling a template costs ~1 ms, far more than rendering it: once per template, not per judge call."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(source)


@dataclass(frozen=True)
class ChatTemplate:
    source: str
    bos_token: str = ""
    eos_token: str = ""

    def render(self, messages: list[dict[str, str]]) -> str:
        return _compiled(self.source).render(
            messages=messages, add_generation_prompt=True, bos_token=self.bos_token, eos_token=self.eos_token
        )

    @classmethod
    def from_gguf(cls, path: str | Path) -> ChatTemplate:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))

        def text(key: str) -> str | None:
            field = reader.get_field(key)
            return None if field is None else field.contents()

        source = text("tokenizer.chat_template")
        if not source:
            raise ValueError(f"{path} holds no tokenizer.chat_template")
        tokens = reader.get_field("tokenizer.ggml.tokens")

        def special(key: str) -> str:
            idx = reader.get_field(key)
            if idx is None or tokens is None:
                return ""
            return tokens.contents(int(idx.contents()))

        return cls(
            source=source,
            bos_token=special("tokenizer.ggml.bos_token_id"),
            eos_token=special("tokenizer.ggml.eos_token_id"),
        )

    @classmethod
    def from_tokenizer_dir(cls, path: str | Path) -> ChatTemplate:
        cfg = json.loads((Path(path) / "tokenizer_config.json").read_text(encoding="utf-8"))
        source = cfg.get("chat_template")
        if source is None and (Path(path) / "chat_template.jinja").is_file():
            source = (Path(path) / "chat_template.jinja").read_text(encoding="utf-8")
        if not source:
            raise ValueError(f"{path} has no chat template")

        def tok(name: str) -> str:
            value = cfg.get(name) or ""
            return value.get("content", "") if isinstance(value, dict) else value

        return cls(source=source, bos_token=tok("bos_token"), eos_token=tok("eos_token"))

    @classmethod
    def resolve(cls, spec: str) -> ChatTemplate:
        """`chatml`, a `.gguf` file, a tokenizer folder, a `.jinja` file, or Jinja source text."""
        if spec == "chatml":
            return cls(CHATML)
        path = Path(spec)
        if spec.endswith(".gguf"):
            return cls.from_gguf(path)
        if path.is_dir():
            return cls.from_tokenizer_dir(path)
        if spec.endswith(".jinja"):
            return cls(path.read_text(encoding="utf-8"))
        if "{%" in spec or "{{" in spec:
            return cls(spec)
        raise ValueError(f"chat template {spec!r} is neither 'chatml', a .gguf, a tokenizer folder nor Jinja text")
