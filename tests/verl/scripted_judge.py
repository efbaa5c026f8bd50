"""A scripted judge for the verl tests: its verdict depends on what the prompt carried, not a constant."""

from __future__ import annotations

from fake_openai import chat_reply, fenced_answers

from writing_rl.data import Sample

SAMPLE = Sample(id=1, prompt="write a note", references=["good", "good good", "good good good"])


def judge_by_goods(path: str, body: dict, n: int) -> tuple:
    """Hard verdict: the answer with more 'good's wins (a tie if equal); 'mumble' gets an answer with no verdict."""
    user = body["messages"][-1]["content"]
    a, b = fenced_answers(user)
    if "mumble" in a + b:
        return chat_reply("I cannot decide.")
    ga, gb = a.count("good"), b.count("good")
    return chat_reply("Compared.\n" + ("[[C]]" if ga == gb else "[[A]]" if ga > gb else "[[B]]"))
