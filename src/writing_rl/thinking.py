"""A reasoning model's thinking: where its answer starts.

Two kinds of chat template: one lets the model open its `<think>` block (Qwen3), the other opens it in the prompt
(DeepSeek-R1 distills, QwQ), so the completion holds only the reasoning's end, `</think>`, and the answer. A
completion that never reaches `</think>` under the second kind ran out of tokens while reasoning: it has no answer.
"""

from __future__ import annotations

from typing import Any


def answer_after_thinking(text: str, opened: bool = False) -> str:
    """The text after the last `</think>`, leading whitespace dropped. Without one: "" when the thinking never
    closed (the text opens `<think>`, or `opened`: the prompt did), else the whole text.
    For the eval options `strip_thinking` (LongBench-Write, LongBench v2, the arena) and `reward.strip_thinking`.
    WritingBench's own cut is another rule (`writingbench.strip_thinking`)."""
    _, marker, answer = text.rpartition("</think>")
    if marker:
        return answer.lstrip()
    return "" if opened or text.lstrip().startswith("<think>") else text


def template_opens_thinking(tokenizer: Any, **chat_template_kwargs: Any) -> bool:
    """Whether the policy's prompt ends inside an open `<think>` block (its chat template opens it), rendered as
    the engine renders a prompt: one user turn and the generation prompt, with the run's template options
    (`enable_thinking`, ...)."""
    if getattr(tokenizer, "chat_template", None) is None:
        return False
    turn = [{"role": "user", "content": "Hi."}]

    def render(generation: bool) -> str:
        return str(
            tokenizer.apply_chat_template(
                turn, add_generation_prompt=generation, tokenize=False, **chat_template_kwargs
            )
        )

    prompt, without = render(True), render(False)
    suffix = prompt[len(without) :] if prompt.startswith(without) else prompt  # what the generation prompt adds
    head, marker, _ = suffix.rpartition("<think>")
    return bool(marker) and "</think>" not in suffix[len(head) :]
