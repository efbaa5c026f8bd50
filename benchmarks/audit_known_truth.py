"""The judge audit against judges whose preferences are known: the tables quoted in docs/judge-audit.md.

Each judge is a scripted OpenAI-compatible server on loopback (tests/scripted_judges.py) that reads
the request and both fenced answers from the real prompt and decides by a rule; the samples are
tiered to follow (or not follow) that rule. Run: `python benchmarks/audit_known_truth.py [--pairs 32]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_openai import FakeOpenAIServer  # noqa: E402
from scripted_judges import (  # noqa: E402
    always_first,
    closer_to_target,
    judge_behaviour,
    keyword_tiered,
    length_tiered,
    longer_wins,
    more_keywords,
)

from writing_rl.audit import AuditSettings  # noqa: E402
from writing_rl.audit.command import AuditInputs, run_audit  # noqa: E402
from writing_rl.audit.report import table  # noqa: E402
from writing_rl.config import LocalJudgeSettings  # noqa: E402
from writing_rl.data import load_samples  # noqa: E402
from writing_rl.judge import JudgeConfig  # noqa: E402
from writing_rl.reward import RewardConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="audit-known-truth-"))
    keywords_mixed = keyword_tiered(work / "keywords_mixed.jsonl", prompts=16, stronger_longer=False)
    keywords_longer = keyword_tiered(work / "keywords_longer.jsonl", prompts=16, stronger_longer=True)
    lengths = length_tiered(work / "lengths.jsonl", prompts=16)
    cases = [
        ("content judge (more keywords wins), tiers by keywords, lengths mixed", more_keywords, keywords_mixed, "both_average"),
        ("length rule judge (closer to 'about N words' wins), tiers built to that rule", closer_to_target, lengths, "both_average"),
        ("always answers the first position, one order", always_first, keywords_mixed, "reference_first"),
        ("always answers the first position, both orders", always_first, keywords_mixed, "both_average"),
        ("prefers the longer answer, tiers where the stronger is longer", longer_wins, keywords_longer, "both_average"),
        ("prefers the longer answer, lengths mixed", longer_wins, keywords_mixed, "both_average"),
    ]  # fmt: skip
    for title, decide, data, position in cases:
        with FakeOpenAIServer(judge_behaviour(decide)) as server:
            judge = JudgeConfig.model_validate({"mode": "hard", "endpoint": {"base_url": server.base_url}})
            inputs = AuditInputs(
                judge, RewardConfig(position=position), LocalJudgeSettings(), load_samples(str(data)), str(data)
            )
            result = run_audit(inputs, AuditSettings(pairs=args.pairs), work / "out", cache=False, progress=False)
        print(f"### {title}\n\n```\n{table(result)}\n```\n", flush=True)


if __name__ == "__main__":
    main()
