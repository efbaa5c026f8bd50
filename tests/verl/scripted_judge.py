"""A scripted judge for the verl tests: its verdict depends on what the prompt carried, not a constant."""

from __future__ import annotations

from fake_openai import chat_reply, fenced_answers

from writing_rl.data import Sample

SAMPLE = Sample(id=1, prompt="write a note", references=["good", "good good", "good good good"])


def compare(a: str, b: str) -> str | None:
    """The verdict: the answer with more 'good's wins ('A' or 'B'), 'C' if equal; None if either says 'mumble'."""
    if "mumble" in a + b:
        return None
    ga, gb = a.count("good"), b.count("good")
    return "C" if ga == gb else "A" if ga > gb else "B"


def judge_by_goods(path: str, body: dict, n: int) -> tuple:
    """Hard verdict by `compare`; 'mumble' gets an answer with no verdict."""
    verdict = compare(*fenced_answers(body["messages"][-1]["content"]))
    return chat_reply("I cannot decide." if verdict is None else f"Compared.\n[[{verdict}]]")


def policy_outcome(answer: str, reference: str) -> str | None:
    """What `judge_by_goods` means for the policy's answer against a reference (None: no verdict)."""
    return {"A": "win", "B": "loss", "C": "tie", None: None}[compare(answer, reference)]
