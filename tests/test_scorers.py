"""The benchmark scorers against the official code's behaviour, worked out by hand from it: reasoning output,
the official try accounting of WritingBench and LongBench-Write, LongBench v2's empty replies, criteria key
order, domains, and WritingBench's requirement scores (X-PLUG/WritingBench `calculate_scores.py`)."""

import asyncio
import json
import re
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer, chat_reply

from writing_rl import writingbench
from writing_rl.critic import SYSTEM as CRITIC_SYSTEM
from writing_rl.critic import CriticConfig, PointwiseCritic, criteria_list
from writing_rl.data import Criterion
from writing_rl.endpoint import ChatResult
from writing_rl.eval import longbench_write as lbw
from writing_rl.eval.requirements import RequirementSubset, load_requirements, requirement_scores
from writing_rl.eval.runner import EvalConfig, evaluate
from writing_rl.prompts import load_prompts
from writing_rl.thinking import answer_after_thinking

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DIMS = lbw.DIMENSIONS
CRITERION = Criterion(name="Clarity", criteria_description="Is it clear?")


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


class ScriptedClient:
    """Stands in for the critic's endpoint client: replies in turn (the last one repeats), counting calls."""

    def __init__(self, replies: list[str]):
        self.replies, self.calls = replies, 0

    async def chat(self, messages, **kw) -> ChatResult:  # type: ignore[no-untyped-def]
        self.calls += 1
        return ChatResult(text=self.replies[min(self.calls, len(self.replies)) - 1])

    async def aclose(self) -> None:
        pass


def critic_score(replies: list[str], **config) -> tuple[float | None, int]:  # type: ignore[no-untyped-def]
    client = ScriptedClient(replies)
    critic = PointwiseCritic(CriticConfig(**config), client=client)  # type: ignore[arg-type]
    return asyncio.run(critic.score_criterion("q", "answer", CRITERION)).score, client.calls


def response_block(user: str) -> str:
    return user.split("** Response **\n```", 1)[1].split("```", 1)[0]


# -- reasoning output ---------------------------------------------------------------------------------


def test_writingbench_cuts_the_think_block_before_sanitising():
    critic = PointwiseCritic(CriticConfig())
    user = critic.messages("q", "<think>plan: say [[A]]</think>\n\nen", CRITERION)[1]["content"]
    assert response_block(user) == "en"  # before: "[removed][removed]\n\nen", nothing cut
    # the official process_gen_field: the first "</think>\n\n" only; without it (one newline) nothing is cut
    twice = critic.messages("q", "a</think>\n\nb</think>\n\nc", CRITERION)[1]["content"]
    assert response_block(twice).startswith("b") and response_block(twice).endswith("\n\nc")
    one_newline = critic.messages("q", "<think>x</think>\nanswer", CRITERION)[1]["content"]
    assert response_block(one_newline).endswith("\nanswer") and "x" in response_block(one_newline)


def test_answer_after_thinking_for_the_non_official_options():
    assert answer_after_thinking("<think>a</think>b</think>\n\n answer") == "answer"  # after the last marker
    assert answer_after_thinking("<think>ran out of tokens") == ""  # reasoning never finished: no answer
    assert answer_after_thinking("plain answer") == "plain answer"
    # the prompt opened the thinking (DeepSeek-R1 distills): the completion holds its end, or ran out before it
    assert answer_after_thinking("plan</think>\n\nanswer", opened=True) == "answer"
    assert answer_after_thinking("plan, plan, plan", opened=True) == ""


def lbw_server(replies: list[str], seen: list[str]):  # type: ignore[no-untyped-def]
    """A model that thinks 300 words and answers 100; a judge that gives each reply in turn, 4s by default."""
    state = {"judge": 0}

    def behaviour(path, body, n):  # type: ignore[no-untyped-def]
        user = body["messages"][-1]["content"]
        if user.startswith("You are an expert in evaluating text quality"):
            seen.append(user)
            state["judge"] += 1
            return chat_reply(replies[min(state["judge"], len(replies)) - 1])
        if "correct answer" in user:  # LongBench v2: reasons past a wrong answer to the right one
            return chat_reply("<think>The correct answer is (A)? No.</think>\n\nThe correct answer is (B)")
        return chat_reply("<think>" + "plan " * 300 + "</think>\n\n" + "word " * 100)

    return FakeOpenAIServer(behaviour)


RATED = json.dumps({"Analysis": "ok", **dict.fromkeys(DIMS, 4)})


def one_server(tmp_path: Path, url: str, tasks: dict) -> EvalConfig:
    """An eval whose model and critic are one scripted server, in a fresh output folder under `tmp_path`."""
    ep = {"base_url": url, "max_retries": 0}
    return EvalConfig.model_validate(
        {
            "model": {"name": "m", "endpoint": ep},
            "output_dir": str(tmp_path / f"eval-{len(list(tmp_path.iterdir()))}"),
            "critic": {"endpoint": ep},
            "tasks": tasks,
        }
    )


def run_lbw(tmp_path: Path, replies: list[str], **task) -> tuple[dict, list[str]]:  # type: ignore[no-untyped-def]
    lw = jsonl(tmp_path / "lw.jsonl", [{"prompt": "Write 100 words.", "type": "x", "length": 100}])
    seen: list[str] = []
    with lbw_server(replies, seen) as server:
        cfg = one_server(tmp_path, server.base_url, {"longbench_write": {"path": str(lw), **task}})
        return evaluate(cfg)["longbench_write"], seen


def test_longbench_write_strip_thinking_cuts_before_counting_and_sanitising(tmp_path):
    official, seen = run_lbw(tmp_path, [RATED])
    # the official scripts read the whole output: 300 + 100 words against 100 required, and the judge sees it all
    assert official["S_l"] == pytest.approx(100 * (1 - (400 / 100 - 1) / 3)) and "plan plan" in seen[0]
    cut, seen = run_lbw(tmp_path, [RATED], strip_thinking=True)
    assert cut["S_l"] == 100.0
    response = seen[0].split("<Response>\n\n", 1)[1].split("\n\n</Response>", 1)[0]
    assert response == "word " * 100
    assert "[removed]" not in seen[0] and "plan" not in seen[0]


def run_v2(tmp_path: Path, replies: dict[str, str], **task) -> dict:  # type: ignore[no-untyped-def]
    rows = [
        {
            "_id": q,
            "question": q,
            "choice_A": "a",
            "choice_B": "b",
            "choice_C": "c",
            "choice_D": "d",
            "answer": "B",
            "context": "text",
            "difficulty": "easy",
            "length": "short",
        }
        for q in replies
    ]
    path = jsonl(tmp_path / f"v2-{len(list(tmp_path.iterdir()))}.jsonl", rows)

    def behaviour(p, body, n):  # type: ignore[no-untyped-def]
        return chat_reply(replies[body["messages"][-1]["content"].split("this question: ")[1].split("\n")[0]])

    with FakeOpenAIServer(behaviour) as server:
        ep = {"base_url": server.base_url, "max_retries": 0}
        cfg = EvalConfig.model_validate(
            {
                "model": {"name": "m", "endpoint": ep},
                "output_dir": str(tmp_path / f"out-{path.stem}"),
                "tasks": {"longbench_v2": {"path": str(path), **task}},
            }
        )
        return evaluate(cfg)["longbench_v2"]


def test_longbench_v2_strip_thinking_is_an_option_off_by_default(tmp_path):
    reply = {"Q?": "<think>The correct answer is (A)? No.</think>\n\nThe correct answer is (B)"}
    assert run_v2(tmp_path, reply)["score"] == 0.0  # official: the first "The correct answer is", in the reasoning
    assert run_v2(tmp_path, reply, strip_thinking=True)["score"] == 100.0


# -- LongBench v2: only an empty reply is missing -----------------------------------------------------


V2_SET = {
    "Q1": "The correct answer is (B)",
    "Q2": "The correct answer is B",
    "Q3": "The correct answer is (C)",
    "Q4": " ",
    "Q5": "\n",
    "Q6": "",
}


def test_longbench_v2_whitespace_reply_is_wrong_not_missing(tmp_path):
    # official get_pred: `if output == '': continue`, else output.strip() is read: " " and "\n" hold no answer
    plain = run_v2(tmp_path, V2_SET)
    assert (plain["score"], plain["n"], plain["missing"]) == (40.0, 5, 1)  # before: 66.7 over 3, 3 missing
    compensated = run_v2(tmp_path, V2_SET, compensated=True)
    assert compensated["score"] == pytest.approx(100 * 2.5 / 5)  # before: 66.7 (the 0.25s were missing)


# -- LongBench-Write: the official quality loop's tries -------------------------------------------------


def without(dim: str) -> str:
    return json.dumps({d: 4 for d in DIMS if d != dim})


@pytest.mark.parametrize(
    "reply, expected",
    [
        (RATED, (dict.fromkeys(DIMS, 4.0), 0)),
        ("no json", (None, 1)),
        ("```json\nunclosed", (None, 1)),  # extract_info gives None: None.replace raises
        (without("Accuracy"), (None, 2)),  # set to None, then `in None` raises on the next dimension
        (without("Relevance"), (None, 2)),
        (without("Reading Experience"), (None, 1)),  # the last: no dimension after it to raise
        ("5", (None, 1)),  # `in 5` raises at once
        ("null", (None, 1)),
        (json.dumps(" ".join(DIMS)), (None, 0)),  # a string holding every name: taken; the aggregation fails
        (json.dumps(dict.fromkeys(DIMS, "good")), (None, 0)),  # taken; float("good") would stop the script
        ("[" * 100_000, (None, 1)),  # nesting too deep for json: a reply it cannot read, never RecursionError
        ('{"a": ' * 100_000, (None, 1)),
        ("```json\n" + "{" * 100_000 + "\n```", (None, 1)),
    ],
)
def test_read_quality_charges_the_official_tries(reply, expected):
    assert lbw.read_quality(reply) == expected


@pytest.mark.parametrize(
    "replies, calls, scored",
    [
        ([without("Accuracy")], 3, False),  # 2 + 2 + 2: three calls spend the five tries (before: five calls)
        ([without("Reading Experience")], 5, False),
        ([without("Accuracy"), "no json", "no json", RATED], 4, True),  # 2 + 1 + 1, then read
        ([without("Accuracy"), without("Clarity"), without("Reading Experience"), RATED], 3, False),  # 2 + 2 + 1
        ([json.dumps(dict.fromkeys(DIMS, "good")), RATED], 1, False),  # taken by the loop: not asked again
    ],
)
def test_longbench_write_quality_spends_tries_as_the_official_loop(tmp_path, replies, calls, scored):
    res, seen = run_lbw(tmp_path, replies)
    assert len(seen) == calls
    assert (res["S_q"] is not None) is scored
    assert res["missing_reasons"] == ({} if scored else {"parse": 1})


# -- WritingBench: the official rounds of tries -------------------------------------------------------

VALID = json.dumps({"score": 7, "reason": "fine"})


@pytest.mark.parametrize(
    "reply, expected",
    [
        (VALID, "accepted"),
        ("```json\n" + VALID + "\n```", "accepted"),
        ("not json", "rejected"),
        (json.dumps({"score": 11, "reason": "x"}), "rejected"),
        (json.dumps({"score": 7}), "rejected"),
        (json.dumps("no such words"), "rejected"),
        ("7", "stop"),  # `"score" in 7` raises
        ("true", "stop"),
        ("null", "rejected"),  # stripped of the characters "json|`": "ull"
        (json.dumps(["score", "reason"]), "stop"),  # found by `in`, then indexed by a string
        (json.dumps("score and reason"), "stop"),
        ("[" * 100_000, "stop"),  # RecursionError is no JSONDecodeError: the official check raises it
        ('{"score": 1' + "0" * 5000 + ', "reason": "x"}', "stop"),  # int past the digit limit: ValueError
    ],
)
def test_official_check_of_a_critic_reply(reply, expected):
    assert writingbench.official_check(reply) == expected


@pytest.mark.parametrize(
    "reply, goes_on",
    [
        ("not json", False),  # eval raises: the script stops
        (json.dumps({"score": 11, "reason": "x"}), True),  # json.loads reads it
        ("{'score': 7, 'reason': 'single quotes'}", True),  # eval reads it
        ("```json\n{'score': 7}\n```", True),
        ("", False),
        ("__import__('os').getcwd()", False),  # eval would run it (and go on); we never run a reply
    ],
)
def test_round_goes_on_only_where_the_official_script_does(reply, goes_on):
    assert writingbench.round_goes_on(reply) is goes_on


@pytest.mark.parametrize(
    "replies, expected",
    [
        (["unreadable"], (None, 5)),  # one round, then eval("unreadable") stops the script (before: 15 calls)
        (["unreadable"] * 5 + [VALID], (None, 5)),  # before: scored 7 at the sixth call
        ([json.dumps({"score": 11, "reason": "x"})], (None, 15)),  # loadable: all three rounds
        ([json.dumps({"score": 11, "reason": "x"})] * 5 + [VALID], (7.0, 6)),
        (["unreadable"] * 4 + ["{'score': 0}", VALID], (7.0, 6)),  # the round's last reply decides
        (["unreadable", "7", VALID], (None, 2)),  # a reply the check cannot inspect stops it at once
        (["unreadable", VALID], (7.0, 2)),
    ],
)
def test_writingbench_critic_spends_tries_as_the_official_script(replies, expected):
    assert critic_score(replies) == expected


def test_parse_retries_is_a_plain_number_of_re_asks():
    assert critic_score(["unreadable"] * 5 + [VALID], parse_retries=9) == (7.0, 6)
    assert critic_score(["7"], parse_retries=2) == (None, 3)


# -- WritingBench: criteria key order, domains ----------------------------------------------------------


def test_criteria_reach_the_critic_in_the_files_key_order(tmp_path):
    entry = {"criteria_description": "Is it clear?", "9-10": "Very clear.", "name": "Clarity", "1-2": "Muddled."}
    path = jsonl(tmp_path / "wb.jsonl", [{"index": 1, "query": "Write.", "checklist": [entry]}])
    [criterion] = criteria_list(load_prompts(path)[0].criteria)
    user = PointwiseCritic(CriticConfig()).messages("Write.", "answer", criterion)[1]["content"]
    # the official prompt formats the checklist entry as Python prints the dict it read
    assert f"** Criteria **\n```{entry}```" in user  # before: 'name' first, then 'criteria_description'
    assert criterion.model_dump() == entry and list(criterion.model_dump()) == list(entry)
    assert list(Criterion(name="n", criteria_description="d").model_dump()) == ["name", "criteria_description"]


def name_scored_critic(body):  # type: ignore[no-untyped-def]
    """The model answers; the critic gives criterion "cN" the score N."""
    if body["messages"][0]["content"] == CRITIC_SYSTEM:
        name = re.search(r"'name': '([^']*)'", body["messages"][1]["content"]).group(1)
        score = int(name[1:]) if re.fullmatch(r"c\d+", name) else 5
        return chat_reply(json.dumps({"score": score, "reason": "x"}))
    return chat_reply("an answer")


def run_wb(tmp_path: Path, path: Path, **task) -> dict:  # type: ignore[no-untyped-def]
    with FakeOpenAIServer(lambda p, b, n: name_scored_critic(b)) as server:
        cfg = one_server(tmp_path, server.base_url, {"writingbench": {"path": str(path), **task}})
        return evaluate(cfg)["writingbench"]


def checklist(*scores: int) -> list[dict]:
    return [{"name": f"c{s}", "criteria_description": f"scores {s}"} for s in scores]


def test_domains_are_the_records_own_fields(tmp_path):
    rows = [
        {"index": 1, "domain1": "Politics & Law/Policy", "domain2": "Memo", "query": "a", "checklist": checklist(8)},
        {"index": 2, "domain2": "Quiz", "query": "b", "checklist": checklist(4)},  # no domain1
    ]
    res = run_wb(tmp_path, jsonl(tmp_path / "wb.jsonl", rows))
    # before: "Politics & Law" / "Policy/Memo" from splitting the joined name, and "Quiz" counted as a domain1
    assert res["per_domain"] == {"Politics & Law/Policy": 80.0}
    assert res["per_subdomain"] == {"Memo": 80.0, "Quiz": 40.0}


# -- WritingBench: requirement scores -------------------------------------------------------------------


def test_requirement_scores_as_calculate_scores_computes_them(tmp_path):
    rows = [
        {"index": 1, "query": "q1", "checklist": checklist(2, 4, 9)},  # mean 5
        {"index": 2, "query": "q2", "checklist": checklist(6, 8)},  # mean 7
        {"index": 3, "query": "q3", "checklist": checklist(10)},  # mean 10
        {"index": 4, "query": "q4", "checklist": checklist(1)},  # mean 1
    ]
    bench = jsonl(tmp_path / "benchmark_query" / "benchmark_all.jsonl", rows)
    req = tmp_path / "benchmark_query" / "requirement"
    only = {1: ["c9"], 2: ["c6", "c8"], 3: ["c10"]}  # C: the criteria that check the requirement, by index
    jsonl(req / "length" / "length_subset.jsonl", [rows[0], rows[1], rows[2]])
    c_rows = [{"index": i, "checklist": checklist(*[int(n[1:]) for n in only[i]])} for i in only]
    jsonl(req / "length" / "length_subset_C.jsonl", c_rows)
    jsonl(req / "style" / "style_subset.jsonl", [rows[3], {"index": 99}])  # 99 was not evaluated: skipped
    jsonl(req / "style" / "style_subset_C.jsonl", [{"index": 4, "checklist": checklist(1)}])
    res = run_wb(tmp_path, bench)  # the requirement/ folder beside the task file, as in the official layout
    length, style = res["requirements"]["length"], res["requirements"]["style"]
    # R: mean of the query means (5 + 7 + 10) / 3; C: flat mean of the named criteria (9 + 6 + 8 + 10) / 4
    assert length["R"] == pytest.approx(10 * 22 / 3) and length["n_R"] == 3
    assert length["C"] == pytest.approx(10 * 33 / 4) and length["n_C"] == 4
    assert (style["R"], style["n_R"], style["C"], style["n_C"]) == (10.0, 1, 10.0, 1)
    assert set(res["requirements"]) == {"length", "style"}  # no format/ folder: no format numbers
    assert run_wb(tmp_path, bench, requirement_dir=str(req))["requirements"] == res["requirements"]


def test_requirement_scores_skip_what_the_official_script_would_stop_on(tmp_path):
    assert load_requirements(tmp_path) == {}
    subset = {"length": RequirementSubset([1, 2, 3], {1: ["a", "zz"], 3: ["b"]})}
    means = {1: 5.0, 2: 6.0}  # 3 was not fully scored
    res = requirement_scores(subset, means, {1: {"a": 4.0, "b": 6.0}, 2: {"a": 6.0}})
    # index 2 has no C entry and "zz" is no criterion of index 1: the official script raises KeyError there
    assert res["length"] == {"R": 55.0, "n_R": 2, "C": 40.0, "n_C": 1, "unmatched": 2}


@pytest.mark.skipif(not (SHARED / "writingbench_length.jsonl").is_file(), reason="../shared/data not present")
def test_requirement_scores_on_the_official_length_subset(tmp_path):
    shared = SHARED / "writingbench_length.jsonl"
    records = [json.loads(line) for line in shared.read_text(encoding="utf-8").splitlines()][:3]
    req = tmp_path / "requirement" / "length"
    req.mkdir(parents=True)
    (req / "length_subset.jsonl").symlink_to(shared)  # the official R file itself, read where it lies
    # our own C file in the official format: the last criterion of each query checks its length
    jsonl(req / "length_subset_C.jsonl", [{"index": r["index"], "checklist": r["checklist"][-1:]} for r in records])
    res = run_wb(tmp_path, shared, limit=3, requirement_dir=str(tmp_path / "requirement"))
    # every criterion scores 5 (no "cN" names): R = C = 50 over the 3 queries scored of 222 listed
    assert res["n"] == 3
    assert res["requirements"]["length"] == {"R": 50.0, "n_R": 3, "C": 50.0, "n_C": 3, "unmatched": 0}
