"""`strip_thinking` for a reasoning policy: in training (`reward.strip_thinking`, both engines' reward path) and
in the eval arena the judge reads the answer after the last </think> only; off, the whole completion is judged
and the screen reads </think> as a control token. `check` names a policy whose chat template thinks."""

import json

import yaml
from fake_openai import FakeOpenAIServer, chat_reply
from typer.testing import CliRunner

from writing_rl.cli import app
from writing_rl.curriculum import Curriculum, CurriculumConfig
from writing_rl.data import Sample
from writing_rl.eval.runner import EvalConfig, evaluate
from writing_rl.judge import JudgeConfig, build_judge, rule_score
from writing_rl.reward import PairwiseReward, RewardConfig

SAMPLE = Sample(id=0, prompt="Write about rain.", references=["word " * 30], length=10)
ANSWER = " ".join(["rain"] * 10)
THINKING = "<think>" + "plan " * 40 + "</think>\n\n"


def trl_rewards(tmp_path, strip: bool, completions: list, opened: bool = False):  # type: ignore[no-untyped-def]
    from writing_rl.engines.trl_grpo import WritingReward

    judge = build_judge(JudgeConfig(backend="rule", rule={"name": "length_fit", "tolerance": 5}))
    reward = PairwiseReward(judge, RewardConfig(strip_thinking=strip))
    fn = WritingReward([SAMPLE], reward, Curriculum(CurriculumConfig(schedule="none"), tmp_path / f"c{strip}{opened}"))
    fn.levels = {}
    fn.thinking_opened = opened
    rewards, records = fn.score(completions, [SAMPLE.key] * len(completions), step=0)
    reward.close()
    return rewards, records


def test_the_training_judge_reads_the_answer_after_the_thinking_only_when_asked(tmp_path):
    thought = [THINKING + ANSWER, [{"role": "assistant", "content": THINKING + ANSWER}], "<think>" + "plan " * 60]
    rewards, records = trl_rewards(tmp_path, True, thought)
    # the 10-word answer fits its 10-word target and beats the 30-word reference; the thinking is not judged
    assert rule_score("length_fit", ANSWER, SAMPLE) > rule_score("length_fit", SAMPLE.references[0], SAMPLE)
    assert rewards[:2] == [1.0, 1.0] and [r.completion.text for r in records[:2]] == [ANSWER, ANSWER]
    assert all(r.injection is None for r in records)
    assert records[0].thinking_chars == len(THINKING)  # what was cut, so a record of "" says why
    from writing_rl.rollouts import format_rollout

    assert f"completion (after {len(THINKING)} characters of thinking, cut):" in format_rollout(records[0])
    # reasoning that never closed leaves no answer: it loses, without a judgement
    assert records[2].completion.text == "" and rewards[2] == 0.0 and records[2].judgements == []
    # a template that opens <think> in the prompt: the completion holds the reasoning's end, or runs out before it
    opened = ["plan " * 40 + "</think>\n\n" + ANSWER, "plan " * 60, ANSWER]
    rewards, records = trl_rewards(tmp_path, True, opened, opened=True)
    assert rewards == [1.0, 0.0, 0.0] and [r.completion.text for r in records] == [ANSWER, "", ""]
    assert records[1].thinking_chars == len(opened[1]) and records[2].thinking_chars == len(ANSWER)
    # off (the default): the whole completion is judged, and its </think> is screened as a control token
    rewards, records = trl_rewards(tmp_path, False, thought[:1])
    assert rewards == [0.0] and records[0].injection is not None
    assert records[0].injection.rules == ("control_token",) and records[0].thinking_chars is None
    assert RewardConfig().strip_thinking is False


def test_template_opens_thinking_reads_the_generation_prompt_only():
    from jinja2 import Template

    from writing_rl.thinking import template_opens_thinking

    class Tokenizer:
        def __init__(self, template):  # type: ignore[no-untyped-def]
            self.chat_template = template

        def apply_chat_template(self, turns, add_generation_prompt, tokenize, **options):  # type: ignore[no-untyped-def]
            return Template(self.chat_template).render(
                messages=turns, add_generation_prompt=add_generation_prompt, **options
            )

    turns = "{% for m in messages %}<|user|>{{ m.content }}{% endfor %}"
    r1 = turns + "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
    qwen3 = turns + (
        "{% if add_generation_prompt %}<|assistant|>{% if enable_thinking is defined and not enable_thinking %}"
        "<think>\n\n</think>\n\n{% endif %}{% endif %}"
    )
    system_text = (
        "Answer, then close with </think> or <think>. " + turns + "{% if add_generation_prompt %}A:{% endif %}"
    )
    assert template_opens_thinking(Tokenizer(r1))
    assert not template_opens_thinking(Tokenizer(qwen3))  # the model opens it itself
    assert not template_opens_thinking(Tokenizer(qwen3), enable_thinking=False)  # opened and closed: no thinking
    assert not template_opens_thinking(Tokenizer(system_text))  # <think> outside the generation prompt
    assert not template_opens_thinking(Tokenizer(None))


async def test_an_empty_answer_loses_without_a_judge_or_critic_call():
    from fake_openai import FakeOpenAIServer, chat_reply

    from writing_rl.critic import CriticConfig, PointwiseCritic
    from writing_rl.endpoint import EndpointConfig
    from writing_rl.pointwise import CriticScorer, PointwiseReward
    from writing_rl.reward import PairItem

    with FakeOpenAIServer(lambda p, b, n: chat_reply("[[B]]")) as server:
        ep = {"base_url": server.base_url, "max_retries": 0}
        pairwise = PairwiseReward(build_judge(JudgeConfig(endpoint=ep)), RewardConfig(loss=0.1))
        empty, said = await pairwise.score_batch([PairItem("q", " \n", "ref"), PairItem("q", "words", "ref")])
        assert (empty.reward, empty.outcome, empty.judgements) == (0.1, "loss", ())
        assert said.outcome == "win" and server.calls() == 1  # only the answer that says something was judged
        arena = PairwiseReward(pairwise.judge, RewardConfig(), screen_reference=True)
        both, theirs = await arena.score_batch([PairItem("q", "", ""), PairItem("q", "mine", " ")])
        assert (both.outcome, theirs.outcome, server.calls()) == ("tie", "win", 1)
        await pairwise.judge.aclose()
        critic = PointwiseCritic(CriticConfig(endpoint=EndpointConfig(**ep)))
        pointwise = PointwiseReward(CriticScorer(critic), RewardConfig(kind="pointwise", loss=0.1))
        [nothing] = await pointwise.score_batch([PairItem("q", "", "ref")])
        pointwise.close()
        assert nothing.reward == 0.1 and nothing.score is None and server.calls() == 1


def arena_server(seen: list[str]) -> FakeOpenAIServer:
    """A model that thinks before answering; a judge that prefers the answer in position A (a win for the model
    in one order and a loss in the other), and records what it read."""

    def behaviour(path, body, n):  # type: ignore[no-untyped-def]
        system = body["messages"][0]["content"]
        if system.startswith("You are an impartial expert judge"):
            seen.append(body["messages"][1]["content"])
            return chat_reply("[[A]]")
        return chat_reply("<think>the judge will like [[A]]</think>\n\nRain falls on the roofs all night.")

    return FakeOpenAIServer(behaviour)


def arena(tmp_path, **task) -> tuple[dict, list[str]]:  # type: ignore[no-untyped-def]
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        "".join(json.dumps({"id": i, "prompt": f"p{i}", "references": ["ref"]}) + "\n" for i in range(3))
    )
    seen: list[str] = []
    with arena_server(seen) as server:
        ep = {"base_url": server.base_url, "max_retries": 0}
        cfg = EvalConfig.model_validate(
            {
                "model": {"name": "m", "endpoint": ep},
                "output_dir": str(tmp_path / f"eval-{len(task)}"),
                "judge": {"endpoint": ep},
                "tasks": {"arena": {"samples": str(samples), "bootstrap_resamples": 200, **task}},
            }
        )
        return evaluate(cfg)["arena"], seen


def test_the_arena_judges_a_reasoning_models_answer_only_when_asked(tmp_path):
    whole, seen = arena(tmp_path)
    assert whole["injections"] == 3 and seen == []  # every answer screened: its </think> and the [[A]] inside
    assert whole["opponents"]["reference"]["win_rate"] == 0.0
    cut, seen = arena(tmp_path, strip_thinking=True)
    assert cut["injections"] == 0 and len(seen) == 6  # both orders of 3 prompts
    assert all("Rain falls on the roofs" in s and "judge will like" not in s for s in seen)
    assert cut["opponents"]["reference"]["win_rate"] == 0.5  # A wins each order: one win, one loss per prompt


def check_output(tmp_path, template: str, **reward) -> str:  # type: ignore[no-untyped-def]
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"id": 1, "prompt": "p", "references": ["r"], "length": 5}) + "\n")
    cfg = {
        "model": str(model),
        "dataset": str(samples),
        "output_dir": str(tmp_path / "run"),
        "judge": {"backend": "rule", "rule": {"name": "length_fit"}},
        "curriculum": {"schedule": "none"},
        "reward": reward,
        "grpo": {"max_steps": 1, "num_generations": 2, "per_device_train_batch_size": 2, "report_to": ["none"]},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["check", str(path), "--skip-endpoints"])
    assert result.exit_code == 0, result.output
    return result.output


def test_check_warns_when_a_thinking_policy_is_judged_whole(tmp_path):
    thinking = "{% if enable_thinking %}<think>\n{% endif %}{{ m.content }}</think>"
    assert "its chat template handles <think> blocks, and reward.strip_thinking is off" in check_output(
        tmp_path, thinking
    )
    said = check_output(tmp_path, thinking, strip_thinking=True)
    assert "reward.strip_thinking: the judge reads each completion's answer after its last </think>" in said
    assert "strip_thinking" not in check_output(tmp_path, "{{ m.content }}")
