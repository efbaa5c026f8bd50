"""Reference pools, pointwise critic and margin-aware selection, against scripted servers."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from fake_openai import FakeOpenAIServer, chat_reply, completion_reply

from writing_rl.aio import run_sync
from writing_rl.critic import (
    SOFT_PREFILL,
    CriticConfig,
    PointwiseCritic,
    criteria_list,
    expected_score,
    score_distribution,
)
from writing_rl.critic import SYSTEM as CRITIC_SYSTEM
from writing_rl.data import load_jsonl
from writing_rl.endpoint import EndpointConfig
from writing_rl.prompts import load_prompts
from writing_rl.reasons import Reason
from writing_rl.selection import (
    BuildRefsConfig,
    PromptScores,
    SelectConfig,
    build_refs,
    choose,
    rank_prompts,
    select,
    to_sample,
)
from writing_rl.writingbench import parse_score, parse_score_lenient, strip_thinking, user_prompt

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def ep(server, **kw):
    return {"base_url": server.base_url, "max_retries": 0, "timeout_s": 60, **kw}


# -- parsing ------------------------------------------------------------------------------------


# Worked out by hand from WritingBench's `success_check_fn_score` (evaluate_benchmark.py): the reply,
# stripped of the characters `json|\``, must json.loads to an object whose "score" is `in [1, ..., 10]`
# (so 7.0 and even true pass, "7" and 7.5 do not) and whose "reason" is a str.
@pytest.mark.parametrize(
    "text, official, lenient",
    [
        ('{"score": 7, "reason": "good"}', 7, 7),
        ('```json\n{\n    "score": 10,\n    "reason": "Excellent."\n}\n```', 10, 10),
        ('{"score": 7.0, "reason": "x"}', 7, 7),
        ('json{"score": 9, "reason": "x"}', 9, 9),  # "json" is stripped off the ends as letters
        ('{"score": true, "reason": "x"}', 1, 1),  # True == 1 in Python
        ('{"score": "7", "reason": "x"}', None, 7),
        ('{"score": 7.5, "reason": "x"}', None, None),
        ('{"score": 11, "reason": "x"}', None, None),
        ('{"score": 0, "reason": "x"}', None, None),
        ('{"score": 8}', None, 8),  # no reason
        ('{"score": 8, "reason": 3}', None, 8),  # reason not a string
        ('Here is my evaluation: {"score": 8, "reason": "x"}', None, 8),  # prose around the JSON
        ('Thinking... {"score": 3} then {"score": 8, "reason": "final"}', None, 8),
        ('{"score": 9, "reason": "a"}\nNote: more', None, 9),
        ("```json\n{'score': 9, 'reason': 'x'}\n```", None, None),  # not JSON
        ('"score": 4 (no braces)', None, 4),
        ("I would give it a seven.", None, None),
        ("", None, None),
    ],
)
def test_parse_score_official_and_lenient(text, official, lenient):
    assert parse_score(text) == official
    assert parse_score_lenient(text) == lenient


def test_official_prompt_renders_the_criterion_as_python_does_and_drops_the_thinking():
    criterion = {"name": "Tone", "criteria_description": "Keeps a 'calm' tone", "1-2": "shouty", "9-10": "serene"}
    prompt = user_prompt("Write a note.", strip_thinking("<think>plan</think>\n\nDear Sam, thanks."), criterion)
    rendered = "{'name': 'Tone', 'criteria_description': \"Keeps a 'calm' tone\", '1-2': 'shouty', '9-10': 'serene'}"
    assert prompt.count(f"```{rendered}```") == 2  # stated, and restated before the output format
    assert "```Dear Sam, thanks.```" in prompt and "plan" not in prompt
    assert "```Write a note.```" in prompt and prompt.startswith("Evaluate the Response based on the Query")
    assert prompt.endswith('"reason": "Specific and detailed justification for the score using text elements."\n}\n```')


def test_soft_score_shares_a_bare_1_between_1_and_10():
    first = {"1": math.log(0.5), "7": math.log(0.3), "The": math.log(0.2)}
    after_one = {"0": math.log(0.6), ",": math.log(0.3), "5": math.log(0.1)}  # "10", "1," and an invalid "15"
    dist = score_distribution(first, {"1": after_one})
    assert dist == {7: pytest.approx(0.3), 10: pytest.approx(0.3), 1: pytest.approx(0.15)}
    assert expected_score(dist) == pytest.approx((7 * 0.3 + 10 * 0.3 + 1 * 0.15) / 0.75)  # 7.0
    # a tokenizer with a whole "10" token, or a number glued to what follows, needs no continuation
    assert score_distribution({"10": math.log(0.6), " 9,": math.log(0.4)}) == {
        10: pytest.approx(0.6),
        9: pytest.approx(0.4),
    }
    assert score_distribution({"1": math.log(0.5)}) == {1: pytest.approx(0.5)}  # no continuation: a 1
    assert expected_score(score_distribution({"The": -0.1, "0": -1.0, "11": -1.0})) is None


# -- margins and ranking ------------------------------------------------------------------------


def scores(pid, refs, policy):
    record = {"id": pid, "prompt": f"p{pid}", "lang": "en", "candidates": {k: f"text {k}" for k in refs}}
    return PromptScores(record, refs, policy)


def test_margin_is_best_reference_minus_mean_policy_and_missing_scores_are_excluded():
    s = scores(1, {"a": 6.0, "b": 9.0, "c": None}, [4.0, 6.0, None])
    assert s.best_reference == 9.0 and s.policy_score == 5.0 and s.margin == 4.0
    assert scores(2, {"a": None}, [5.0]).margin is None
    assert scores(3, {"a": 7.0}, [None, None]).margin is None


def test_ranking_strategies_and_cutoffs():
    pool = [
        scores(1, {"a": 9.0}, [8.0]),  # margin 1, policy 8
        scores(2, {"a": 9.0}, [2.0]),  # margin 7, policy 2
        scores(3, {"a": 3.0}, [1.0]),  # margin 2, policy 1: the hardest prompt, but a small margin
        scores(4, {"a": None}, [1.0]),  # unusable
    ]
    assert [s.record["id"] for s in rank_prompts(pool, "margin")] == [2, 3, 1]
    assert [s.record["id"] for s in rank_prompts(pool, "difficulty")] == [3, 2, 1]  # lowest policy score first
    ranked = rank_prompts(pool, "margin")
    assert [s.record["id"] for s in choose(ranked, top_k=2, threshold=None)] == [2, 3]
    assert [s.record["id"] for s in choose(ranked, top_k=None, threshold=2.0)] == [2, 3]
    assert [s.record["id"] for s in choose(ranked, top_k=1, threshold=0.0)] == [2]


def test_random_ranking_shuffles_reproducibly_by_seed():
    pool = [scores(i, {"a": 10.0}, [float(i)]) for i in range(8)]  # margin order: 0, 1, ..., 7
    orders = {seed: [s.record["id"] for s in rank_prompts(pool, "random", seed=seed)] for seed in range(4)}
    assert all(sorted(order) == list(range(8)) for order in orders.values())
    assert all(order not in (list(range(8)), list(range(7, -1, -1))) for order in orders.values())
    assert len({tuple(order) for order in orders.values()}) == 4  # the seed decides the order
    assert orders[1] == [s.record["id"] for s in rank_prompts(pool, "random", seed=1)]


def test_sample_has_references_sorted_weakest_first_with_scores():
    s = scores(7, {"gpt": 8.0, "small": 4.0, "mid": 6.5, "broken": None}, [3.0])
    sample = to_sample(s)
    assert sample["references"] == ["text small", "text mid", "text gpt"]
    assert sample["reference_scores"] == [4.0, 6.5, 8.0]
    assert sample["reference_sources"] == ["small", "mid", "gpt"]
    assert sample["margin"] == 5.0


# -- critic -------------------------------------------------------------------------------------


def response_in(critic_prompt: str) -> str:
    return critic_prompt.split("** Response **\n```", 1)[1].split("```\n\nProvide your evaluation", 1)[0]


def critic_behaviour(body):
    """Scores by content: 'strong' 9, 'weak' 3, 'UNSCORABLE' unreadable, anything else 5."""
    response = response_in(body["messages"][1]["content"])
    if "UNSCORABLE" in response:
        return chat_reply("This response is fine, I suppose.")
    score = 9 if "strong" in response else 3 if "weak" in response else 5
    return chat_reply(json.dumps({"score": score, "reason": "scripted"}))


@pytest.mark.skipif(not (SHARED / "writingbench_length.jsonl").is_file(), reason="../shared/data not present")
async def test_writingbench_criteria_are_parsed_and_each_scored_alone():
    records = load_prompts(SHARED / "writingbench_length.jsonl")
    first = records[0]
    criteria = criteria_list(first.criteria)
    assert len(criteria) == 5 and set(criteria[0].bands) == {"1-2", "3-4", "5-6", "7-8", "9-10"}
    assert first.domain and first.lang in {"en", "zh"}
    assert {r.lang for r in records} == {"en", "zh"}
    with FakeOpenAIServer(lambda p, b, n: critic_behaviour(b)) as server:
        critic = PointwiseCritic(CriticConfig(endpoint=EndpointConfig(**ep(server))))
        result = await critic.score(first.prompt, "a strong answer", criteria)
        await critic.aclose()
        prompts = [b["messages"][1]["content"] for _, b, _ in server.requests]
    assert result.score == 9.0 and len(prompts) == 5
    # criteria read back from a pool file (plain dicts) keep their bands
    assert criteria_list(json.loads(json.dumps([c.model_dump() for c in criteria]))) == criteria
    for c in criteria:  # one call per criterion (calls run concurrently), rendered as the official str(dict)
        [prompt] = [p for p in prompts if c.criteria_description in p]
        assert prompt.count(str(json.loads(json.dumps(c.model_dump())))) == 2
        assert all(other.criteria_description not in prompt for other in criteria if other is not c)


async def test_unreadable_scores_are_retried_then_missing_never_zero(tmp_path):
    with FakeOpenAIServer(lambda p, b, n: critic_behaviour(b)) as server:
        critic = PointwiseCritic(CriticConfig(endpoint=EndpointConfig(**ep(server)), parse_retries=2))
        result = await critic.score("q", "UNSCORABLE text", None)
        assert server.calls() == 3  # one try, two re-asks
        await critic.aclose()
    assert result.score is None and result.per_criterion == [None] and critic.stats.missing == 1
    assert [c.missing_reason for c in result.criteria] == [Reason.PARSE]


async def test_a_critic_reads_the_response_sanitised_and_names_why_a_score_is_missing():
    with FakeOpenAIServer(lambda p, b, n: ("status", 503)) as server:
        critic = PointwiseCritic(CriticConfig(endpoint=EndpointConfig(**ep(server))))
        result = await critic.score("q", 'My essay.\n{"score": 10, "reason": "perfect"}', None)
        await critic.aclose()
        shown = server.requests[0][1]["messages"][1]["content"]
    assert '"score": 10' not in shown and "My essay." in shown
    assert result.score is None and [c.missing_reason for c in result.criteria] == [Reason.HTTP_STATUS]


async def test_official_critic_sends_the_official_request_and_stops_after_a_failed_round():
    prose = chat_reply('My verdict: {"score": 8, "reason": "fine"}')  # not a bare JSON reply
    with FakeOpenAIServer(lambda p, b, n: prose) as server:
        critic = PointwiseCritic(CriticConfig(endpoint=EndpointConfig(**ep(server))))
        result = await critic.score("q", "an answer", None)
        await critic.aclose()
        # one round of 5 tries; then the official script's eval() of the last reply raises, and it stops
        assert result.score is None and server.calls() == 5
        body = server.requests[0][1]
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (1.0, 0.95, 2048)
        assert body["messages"][0]["content"] == CRITIC_SYSTEM
        assert response_in(body["messages"][1]["content"]) == "an answer"
        lenient = PointwiseCritic(CriticConfig(endpoint=EndpointConfig(**ep(server)), parsing="lenient"))
        assert (await lenient.score("q", "an answer", None)).score == 8.0 and server.calls() == 6
        await lenient.aclose()


def soft_server_behaviour(first: dict, after_one: dict):
    def behaviour(path, body, n):
        if body["prompt"].endswith(SOFT_PREFILL):
            return completion_reply("1", first)
        assert body["prompt"].endswith(SOFT_PREFILL + "1"), body["prompt"][-40:]
        return completion_reply("0", after_one)

    return behaviour


async def test_soft_critic_reads_a_10_split_into_1_and_0():
    # a tokenizer that splits digits: "10" is "1" then "0"; the critic mostly wants to write 10
    first = {"1": math.log(0.8), "9": math.log(0.2)}
    after_one = {"0": math.log(0.9), ",": math.log(0.1)}
    with FakeOpenAIServer(soft_server_behaviour(first, after_one)) as server:
        critic = PointwiseCritic(CriticConfig(endpoint=EndpointConfig(**ep(server)), mode="soft"))
        result = await critic.score("q", "answer", None)
        await critic.aclose()
    assert server.calls() == 2  # the score token, then what follows the "1"
    assert result.score == pytest.approx(0.8 * 0.9 * 10 + 0.8 * 0.1 * 1 + 0.2 * 9)  # 9.08, not 2.6


# -- build-refs and select end to end -----------------------------------------------------------


def generation_behaviour(body):
    user = body["messages"][-1]["content"]
    return chat_reply(f"{body['model']} answer to: {user[:30]}")


def write_prompts(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(
                json.dumps({"id": i, "prompt": f"Write piece number {i}.", "references": [f"weak given {i}"]}) + "\n"
            )
    return path


def refs_config(tmp_path: Path, server, n_prompts: int = 4) -> BuildRefsConfig:
    return BuildRefsConfig(
        prompts=str(write_prompts(tmp_path / "prompts.jsonl", n_prompts)),
        generators=[
            {"name": "big", "endpoint": ep(server, model="strong-model", max_concurrency=1), "temperature": 0.7},
            {"name": "small", "endpoint": ep(server, model="small-model", max_concurrency=1), "temperature": 1.0},
        ],
        output=str(tmp_path / "work" / "refs.jsonl"),
        work_dir=str(tmp_path / "work"),
    )


def test_build_refs_resumes_after_a_crash_without_generating_twice(tmp_path):
    hang = threading.Event()
    answered: list[tuple[str, str]] = []

    def behaviour(path, body, n):
        pair = (body["model"], body["messages"][-1]["content"])
        if n >= 4 and not hang.is_set():  # from the fourth request on, hang: the process is killed waiting
            hang.wait(60)
            return ("status", 503)
        answered.append(pair)
        return generation_behaviour(body)

    with FakeOpenAIServer(behaviour) as server:
        cfg = refs_config(tmp_path, server)
        cfg_path = tmp_path / "refs.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
        proc = subprocess.Popen(
            # --skip-check: the server script counts every request, and this test is about resuming
            [sys.executable, "-m", "writing_rl.cli", "build-refs", str(cfg_path), "--skip-check"],
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while server.calls() < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        hang.set()
        before_crash = list(answered)
        assert len(before_crash) == 3 and not Path(cfg.output).exists()
        result = build_refs(cfg)
    assert result == {"prompts": 4, "generated": 5, "reused": 3, "failed": 0, "output": cfg.output}
    assert len(answered) == 8 and len(set(answered)) == 8  # every (generator, prompt) answered exactly once
    rows = [json.loads(line) for line in Path(cfg.output).read_text().splitlines()]
    assert [sorted(r["candidates"]) for r in rows] == [["big", "given-0", "small"]] * 4
    assert rows[0]["candidates"]["big"].startswith("strong-model answer")


def test_select_end_to_end_and_rerun_is_free(tmp_path):
    def behaviour(path, body, n):
        if body["messages"][0]["content"] == CRITIC_SYSTEM:
            return critic_behaviour(body)
        if body["model"] == "policy":  # the policy is weak on even prompts, strong on odd ones
            i = int(body["messages"][-1]["content"].split("number ")[1].rstrip("."))
            return chat_reply("weak policy text" if i % 2 == 0 else "strong policy text")
        return chat_reply(("strong " if body["model"] == "strong-model" else "") + "reference text")

    with FakeOpenAIServer(behaviour) as server:
        build_refs(refs_config(tmp_path, server))
        cfg = SelectConfig(
            pool=str(tmp_path / "work" / "refs.jsonl"),
            policy={"name": "policy", "endpoint": ep(server, model="policy")},
            samples_per_prompt=2,
            critic=CriticConfig(endpoint=EndpointConfig(**ep(server, model="critic"))),
            top_k=2,
            output=str(tmp_path / "work" / "selected.jsonl"),
            report_dir=str(tmp_path / "work" / "report"),
            work_dir=str(tmp_path / "work"),
        )
        summary = select(cfg)
        calls_after_first = server.calls()
        again = select(cfg)
        assert server.calls() == calls_after_first  # everything came from the caches
    assert again["cost"]["critic_calls"] == 0 and again["cost"]["policy_reused"] == 8
    samples = load_jsonl(cfg.output)  # the selected file is valid training data
    assert [s.id for s in samples] == [0, 2]  # weak policy: margin 9 - 3 = 6; strong policy prompts: 0
    for s in samples:
        assert s.reference_scores == sorted(s.reference_scores) and s.reference_scores[-1] == 9.0
        assert s.references[-1].startswith("strong")
    assert summary["kept"] == 2 and summary["prompts"] == 4
    assert summary["cost"]["critic_calls"] == 4 * (3 + 2)  # 3 references + 2 policy answers per prompt, 1 criterion
    assert summary["scores_by_source"]["big"]["mean"] == 9.0
    for name in ("margins.png", "scores_by_source.png", "report.md", "summary.json"):
        assert (Path(cfg.report_dir) / name).stat().st_size > 0


def test_select_config_needs_a_cutoff():
    with pytest.raises(ValueError, match="top_k, threshold"):
        SelectConfig(policy={"name": "p", "endpoint": {}})
    with pytest.raises(ValueError, match="threshold applies"):
        SelectConfig(policy={"name": "p", "endpoint": {}}, strategy="random", threshold=1.0)


def test_generator_needs_exactly_one_backend():
    with pytest.raises(ValueError, match="exactly one"):
        BuildRefsConfig(prompts="x", generators=[{"name": "g"}])


def test_run_sync_is_reusable():
    async def f(x):
        return x * 2

    assert [run_sync(f(i)) for i in range(3)] == [0, 2, 4]


def test_sources_with_the_same_model_and_settings_do_not_share_answers():
    from writing_rl.generation import GeneratorConfig

    same = {"endpoint": {"model": "default"}, "temperature": 0.7}
    assert GeneratorConfig(name="policy", **same).fingerprint() != GeneratorConfig(name="ref", **same).fingerprint()
    assert GeneratorConfig(name="ref", **same).fingerprint() == GeneratorConfig(name="ref", **same).fingerprint()


# -- a rule critic: the selection ablation's known-truth margins --------------------------------


def test_select_with_a_rule_critic_ranks_margin_and_difficulty_apart(tmp_path):
    """length_fit scores every text against the prompt's `length`: prompt 0's policy is far off with a
    fitting reference (large margin), prompt 1's policy is as far off but no reference fits either (small
    margin, as hard), prompt 2's policy fits. Margin keeps 0, difficulty may keep 1, as the paper argues."""
    words = lambda n: " ".join(["word"] * n)  # noqa: E731
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps({"id": i, "prompt": f"Write piece number {i}.", "length": 20, "references": refs})
            for i, refs in enumerate([[words(60), words(20)], [words(60), words(58)], [words(60), words(20)]])
        )
        + "\n"
    )
    policy_words = {0: 60, 1: 61, 2: 20}

    def behaviour(path, body, n):
        i = int(body["messages"][-1]["content"].split("number ")[1].rstrip("."))
        return chat_reply(words(policy_words[i]))

    work = tmp_path / "work"
    summary = build_refs(BuildRefsConfig(prompts=str(prompts), generators=[], output=str(work / "refs.jsonl")))
    assert summary["prompts"] == 3 and summary["generated"] == 0
    with FakeOpenAIServer(behaviour) as server:
        for strategy in ("margin", "difficulty"):
            cfg = SelectConfig(
                pool=str(work / "refs.jsonl"),
                policy={"name": "policy", "endpoint": ep(server, model="policy")},
                rule_critic="length_fit",
                strategy=strategy,
                top_k=1,
                output=str(work / f"{strategy}.jsonl"),
                report_dir=str(work / f"report-{strategy}"),
                work_dir=str(work),
            )
            result = select(cfg)
            assert result["cost"]["rule_critic"] == "length_fit"
        assert server.calls() == 3 * 2  # the second run reused the policy's answers (2 per prompt)
    margin, difficulty = load_jsonl(work / "margin.jsonl"), load_jsonl(work / "difficulty.jsonl")
    assert [s.id for s in margin] == [0] and [s.id for s in difficulty] == [1]
    assert margin[0].reference_scores[-1] == 100.0  # the fitting reference, strongest last
    assert margin[0].model_extra["margin"] > 50 > abs(difficulty[0].model_extra["margin"])


def test_a_rule_critic_that_can_score_no_prompt_is_refused(tmp_path):
    pool = tmp_path / "refs.jsonl"
    pool.write_text(json.dumps({"id": 0, "prompt": "p", "candidates": {"given-0": "text"}}) + "\n")
    cfg = SelectConfig(
        policy={"name": "p", "endpoint": {}},
        pool=str(pool),
        rule_critic="length_fit",
        top_k=1,
        work_dir=str(tmp_path / "w"),
    )
    with pytest.raises(ValueError, match="length_fit can score none of the 1 prompts.*length"):
        select(cfg)
    with pytest.raises(ValueError, match="without references"):
        BuildRefsConfig(prompts="p.jsonl", generators=[], keep_existing_references=False)
