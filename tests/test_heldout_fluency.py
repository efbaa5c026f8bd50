"""scripts/heldout_fluency.py: the base model's NLL per answer token, the prompt given but not scored."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "heldout_fluency.py"


def load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("heldout_fluency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_only_the_answer_tokens_are_scored_as_transformers_scores_them_with_the_prompt_masked(tiny_model):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = [("Write about rain.", "Rain falls on the roofs."), ("Write about rain.", "")]
    scored, empty = load().answer_nll(tiny_model, pairs)
    assert empty is None  # nothing to score
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    head = tok.apply_chat_template(
        [{"role": "user", "content": pairs[0][0]}], tokenize=False, add_generation_prompt=True
    )
    head_ids = tok(head, add_special_tokens=False)["input_ids"]
    answer_ids = tok(pairs[0][1], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([head_ids + answer_ids])
    labels = ids.clone()
    labels[0, : len(head_ids)] = -100  # the prompt is context, not scored
    with torch.no_grad():
        expected = model(ids, labels=labels).loss.item()
    assert scored == pytest.approx(expected, rel=1e-5)
    other_prompt = load().answer_nll(tiny_model, [("Write about snow, please.", pairs[0][1])])[0]
    assert other_prompt != pytest.approx(scored)  # conditioned on the prompt
