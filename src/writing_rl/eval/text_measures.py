"""Measures of held-out text that a rule metric cannot see: a policy trained against a rule can win the rule with
text that is not writing, so the ablation reads its rule metrics beside these.

- `uncounted_words`: the share (0–100) of an answer's whitespace-separated tokens in which LongBench-Write's
  word counter finds no word (emoji, other scripts, numbers, symbols): padding that S_l does not see.
- `base_nll`: the base model's negative log-likelihood per answer token, the prompt given in its chat
  template: how unlikely the untrained model finds the text. The trained models cannot game it, since the
  base model never saw their rewards.

Lower is better for both.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tqdm.auto import tqdm

from ..text_metrics import count_length

MeasureName = Literal["uncounted_words", "base_nll"]


@dataclass(frozen=True)
class Measure:
    """How a measure is read and drawn (a rule metric is a 0–100 score, higher better)."""

    about: str
    full_range: tuple[float, float] | None  # a bounded quantity's whole range; None: from 0 to the data
    digits: int


MEASURES: dict[str, Measure] = {
    "uncounted_words": Measure("% of tokens S_l's word counter does not see (lower is better)", (0.0, 100.0), 1),
    "base_nll": Measure("base model's NLL per answer token (lower is more fluent)", None, 2),
}


def uncounted_share(text: str) -> float:
    """The percentage of the text's whitespace-separated tokens with no word the official counter counts; an
    empty answer hides nothing (0)."""
    tokens = text.split()
    if not tokens:
        return 0.0
    return 100.0 * sum(count_length(t) == 0 for t in tokens) / len(tokens)


def answer_nll(
    model_path: str, pairs: Sequence[tuple[str, str]], batch: int = 16, max_logits: int = 2**27
) -> list[float]:
    """The mean NLL per answer token of each (prompt, answer) under the model, the prompt in its chat template and
    not scored. An empty answer is scored as ending at once (the NLL of the end-of-sequence token).

    Batched with right padding: under a causal mask the padding after a sequence changes none of its logits. A
    batch holds at most `max_logits` logits (512 MB in float32): fewer rows for a large vocabulary or long
    answers, down to one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    end = tok.eos_token_id
    if end is None:
        raise ValueError(f"{model_path}: the tokenizer has no end-of-sequence token to score an empty answer with")
    pad = tok.pad_token_id if tok.pad_token_id is not None else end
    heads: dict[str, list[int]] = {}
    rows = []
    for prompt, answer in pairs:
        if prompt not in heads:
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            heads[prompt] = tok(text, add_special_tokens=False)["input_ids"]
        rows.append((heads[prompt], tok(answer, add_special_tokens=False)["input_ids"] or [end]))
    out: list[float] = []
    progress = tqdm(total=len(rows), desc="base-model NLL", unit="answer", disable=len(rows) <= batch)
    start = 0
    while start < len(rows):
        width = max(len(h) + len(a) for h, a in rows[start : start + batch])
        chunk = rows[start : start + max(1, min(batch, max_logits // (width * len(tok))))]
        start += len(chunk)
        progress.update(len(chunk))
        ids = torch.full((len(chunk), width), pad)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, (h, a) in enumerate(chunk):
            ids[i, : len(h) + len(a)] = torch.tensor(h + a)
            mask[i, : len(h) + len(a)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
        for i, (h, a) in enumerate(chunk):
            scored = logits[i, len(h) - 1 : len(h) + len(a) - 1]
            out.append(float(torch.nn.functional.cross_entropy(scored, torch.tensor(a), reduction="mean")))
    progress.close()
    del model
    gc.collect()
    return out
