"""The attack suite's figures: how many attack answers flip a reward, per judge, verdict mode and position mode.

Runs every answer of `tests/attack_judges.py` (each attack aimed at A and at B) against the two scripted
judges on a loopback server, with the answers passed to the judge (a) untouched, (b) through the old
one-pass `defang`, (c) sanitised (`injection: off`), and counts flips: attack rewards above the plain
carrier text's. Then (d) how many the injection screen catches before any call (`injection: penalize`).

    PYTHONPATH=src python benchmarks/attack_suite.py
"""

from __future__ import annotations

import asyncio
import re
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from attack_judges import CARRIER, QUESTION, REFERENCE, attack_answers, obeying_judge, quoting_judge  # noqa: E402
from fake_openai import FakeOpenAIServer  # noqa: E402

import writing_rl.judge.pairwise as pairwise  # noqa: E402
import writing_rl.judge.templates as templates  # noqa: E402
from writing_rl.endpoint import EndpointConfig  # noqa: E402
from writing_rl.judge import JudgeConfig, PairwiseJudge  # noqa: E402
from writing_rl.reward import PairItem, PairwiseReward, RewardConfig  # noqa: E402

JUDGES = {"quoting": quoting_judge, "obeying": obeying_judge}
POSITIONS = ["reference_first", "policy_first", "both_average", "both_agree"]
_OLD_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_OLD_FENCE = re.compile(r"<{3,}|>{3,}")


def old_defang(answer: str) -> str:
    """The sanitiser before issue 10: one regex pass."""
    return _OLD_FENCE.sub(lambda m: m.group(0)[0] * 2, _OLD_VERDICT.sub(r"[\1]", answer))


@contextmanager
def sanitiser(name: str):
    """Judge with the answers untouched, old-defanged once (as the old template did), or sanitised."""
    saved = pairwise.sanitize, templates.sanitize
    if name != "sanitise":
        pairwise.sanitize = lambda text: text
        templates.sanitize = old_defang if name == "old defang" else (lambda text: text)
    try:
        yield
    finally:
        pairwise.sanitize, templates.sanitize = saved


async def run(judge: str, verdicts: str, position: str, injection: str) -> tuple[int, int, int]:
    """(flips, answers caught by the screen, judge calls) for one configuration."""
    answers = list(attack_answers().values())
    with FakeOpenAIServer(JUDGES[judge]) as server:
        cfg = JudgeConfig(
            endpoint=EndpointConfig(base_url=server.base_url, max_retries=0, timeout_s=30),
            mode=verdicts,
            reason_first=verdicts == "soft" and judge == "quoting",
        )
        pj = PairwiseJudge(cfg)
        reward = PairwiseReward(pj, RewardConfig(position=position, injection=injection))
        *attacked, plain = await reward.score_batch([PairItem(QUESTION, a, REFERENCE) for a in [*answers, CARRIER]])
        await pj.aclose()
        calls = server.calls()
    flips = sum(1 for r in attacked if r.reward is not None and r.reward > plain.reward + 1e-9)
    return flips, sum(r.injection is not None for r in attacked), calls


async def main() -> None:
    n = len(attack_answers())
    print(f"{n} attack answers; flips = attack rewards above the plain carrier text's reward")
    print(
        f"{'judge':<8} {'verdicts':<8} {'position':<16} {'untouched':>9} {'old defang':>10} {'sanitised':>9} {'screened':>8}"
    )
    totals = {"untouched": 0, "old defang": 0, "sanitise": 0, "screened": 0, "configs": 0}
    for judge in JUDGES:
        for verdicts in ("hard", "soft"):
            for position in POSITIONS:
                flips = {}
                for name in ("untouched", "old defang", "sanitise"):
                    with sanitiser(name):
                        flips[name] = (await run(judge, verdicts, position, "off"))[0]
                penalized, caught, _ = await run(judge, verdicts, position, "penalize")
                print(
                    f"{judge:<8} {verdicts:<8} {position:<16} {flips['untouched']:>9} {flips['old defang']:>10} "
                    f"{flips['sanitise']:>9} {caught:>5}/{n}"
                )
                for name in ("untouched", "old defang", "sanitise"):
                    totals[name] += flips[name]
                totals["screened"] += caught
                totals["configs"] += 1
                assert penalized == 0  # a caught answer is a loss: it cannot flip
    c = totals["configs"]
    print(
        f"total over {c} configurations ({c * n} scored attack answers): flips untouched {totals['untouched']}, "
        f"old defang {totals['old defang']}, sanitised {totals['sanitise']}; screened {totals['screened']}/{c * n}"
    )


if __name__ == "__main__":
    asyncio.run(main())
