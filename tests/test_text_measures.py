"""Measures of held-out text beside the rule metrics (eval/text_measures.py): the share of tokens LongBench-Write's
word counter does not see, and the base model's NLL per answer token."""

import pytest

from writing_rl.eval.text_measures import answer_nll, uncounted_share


def test_only_tokens_without_a_counted_word_are_uncounted():
    assert uncounted_share("A cat naps in the sun.") == 0.0
    assert uncounted_share("cat 🌸 1056 سرس nap") == pytest.approx(60.0)  # emoji, a number, another script
    assert uncounted_share("don't x-ray") == 0.0  # counted (as several words), not hidden
    assert uncounted_share("  ") == 0.0  # an empty answer hides nothing


def masked_loss(tiny_model, prompt: str, answer_ids: list[int]) -> float:
    """transformers' own loss over the answer tokens, the prompt masked out."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    head_ids = tok(head, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([head_ids + answer_ids])
    labels = ids.clone()
    labels[0, : len(head_ids)] = -100  # the prompt is context, not scored
    with torch.no_grad():
        return model(ids, labels=labels).loss.item()


def test_only_the_answer_tokens_are_scored_as_transformers_scores_them_with_the_prompt_masked(tiny_model):
    pytest.importorskip("torch")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    pairs = [("Write about rain.", "Rain falls on the roofs."), ("Write about rain.", "")]
    scored, empty = answer_nll(tiny_model, pairs)
    answer_ids = tok(pairs[0][1], add_special_tokens=False)["input_ids"]
    assert scored == pytest.approx(masked_loss(tiny_model, pairs[0][0], answer_ids), rel=1e-5)
    assert empty == pytest.approx(masked_loss(tiny_model, pairs[0][0], [tok.eos_token_id]), rel=1e-5)  # ends at once
    other_prompt = answer_nll(tiny_model, [("Write about snow, please.", pairs[0][1])])[0]
    assert other_prompt != pytest.approx(scored)  # conditioned on the prompt


def test_a_batch_of_unequal_lengths_scores_each_answer_as_it_would_alone(tiny_model):
    pytest.importorskip("torch")
    pairs = [
        ("Write about rain.", "Rain."),
        ("Tell me a long story about the sea and its ships, please.", "The sea was calm and the ships sailed on."),
        ("Write about rain.", "Rain falls on the roofs of the old town all night."),
    ]
    alone = [answer_nll(tiny_model, [p])[0] for p in pairs]
    assert answer_nll(tiny_model, pairs, batch=3) == pytest.approx(alone, rel=1e-4)  # padding changes nothing
    assert answer_nll(tiny_model, pairs, batch=3, max_logits=1) == pytest.approx(alone, rel=1e-4)  # a row a batch
    assert len(set(alone)) == 3


def test_cached_nll_scores_each_answer_once_per_model_and_survives_a_torn_line(tmp_path, tiny_model):
    pytest.importorskip("torch")
    from writing_rl.eval.nll_cache import cached_nll

    asked: list[list[tuple[str, str]]] = []

    def scored(model, pairs):
        asked.append(list(pairs))
        return answer_nll(model, pairs)

    cache = tmp_path / "heldout" / "base_nll.jsonl"
    rain, sea = ("Write about rain.", "Rain falls."), ("Write about the sea.", "Waves.")
    first = cached_nll(tiny_model, "base@1", [rain, sea, rain], cache, scored)
    assert asked == [[rain, sea]] and first[0] == first[2]  # a repeated answer is scored once
    assert first == pytest.approx(answer_nll(tiny_model, [rain, sea, rain]), rel=1e-4)
    assert cached_nll(tiny_model, "base@1", [sea, rain], cache, scored) == [first[1], first[0]]
    assert len(asked) == 1  # all from the file
    storm = ("Write about rain.", "A storm.")
    cached_nll(tiny_model, "base@1", [rain, storm], cache, scored)
    assert asked[1:] == [[storm]]  # only the new answer
    cached_nll(tiny_model, "base@2", [rain], cache, scored)
    assert asked[2:] == [[rain]]  # another base model scores anew
    with cache.open("a") as fh:
        fh.write('{"key": "')  # a write cut off by a crash
    assert cached_nll(tiny_model, "base@1", [sea], cache, scored) == [first[1]] and len(asked) == 3
