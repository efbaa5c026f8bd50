"""The method learns, at CI size: a tiny model, trained through `writing-rl train`'s own path (pairwise
reward against each prompt's current reference, dynamic curriculum, TRL GRPO) against the `length_fit`
rule judge, must move its held-out length score the way the rule says.

The model is a word-level toy so that a few dozen CPU steps are enough: prompts ask for a short (2
words) or a long (10 words) answer, and the untrained model writes about 10 words either way. This
test was checked to fail when the reward's sign is flipped and when completions are scored against
another prompt's sample (see docs/sanity-checks.md).
"""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from writing_rl.ablation import generate_answers  # noqa: E402
from writing_rl.curriculum import CurriculumStore  # noqa: E402
from writing_rl.data import load_samples  # noqa: E402
from writing_rl.judge import rule_score  # noqa: E402
from writing_rl.train import TrainConfig, train  # noqa: E402

pytestmark = pytest.mark.train

FILLERS = ["a", "b", "c", "d", "e", "f", "g", "h"]
TARGETS = {"write short": 2, "write long": 10}


@pytest.fixture(scope="module")
def word_model(tmp_path_factory) -> str:
    """A 2-layer Llama over a 15-token word-level vocabulary with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("word-model")
    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "user", "assistant", "write", "short", "long", *FILLERS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="</s>", pad_token="<pad>")
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant {% endif %}"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def write_samples(path) -> str:
    """Each prompt 8 times (a dataset pass covers several steps) with references weakest first."""

    def words(n: int) -> str:
        return " ".join(FILLERS[i % len(FILLERS)] for i in range(n))

    tiers = {"write short": [10, 5, 2], "write long": [2, 5, 10]}  # S_l 0, 50 and 100 against the target
    rows = [
        {
            "id": f"{prompt.split()[1]}-{k}",
            "prompt": prompt,
            "length": target,
            "references": [words(n) for n in tiers[prompt]],
        }
        for prompt, target in TARGETS.items()
        for k in range(8)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def heldout_length_score(model: str, samples) -> dict[str, float]:
    """Mean S_l (0-100) per prompt over 32 sampled answers each, from a fixed seed."""
    picked = [next(s for s in samples if s.prompt_text == p) for p in TARGETS]
    answers = generate_answers(model, picked, n=32, max_new_tokens=16, temperature=1.0, batch=64, seed=1234)
    return {
        s.prompt_text: sum(rule_score("length_fit", a, s) for a in ans) / len(ans) for s, ans in zip(picked, answers)
    }


@pytest.fixture
def one_thread():
    """A toy model runs ~50x faster on one thread than on two threads that another process competes with."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SEEDS = (0, 1, 2)


def test_pairwise_reward_and_dynamic_curriculum_teach_prompt_dependent_length(tmp_path, word_model, one_thread):
    """Over three seeds, at least two learn both prompts' targets. One seed can collapse to the short answer for
    both prompts (seed 0 does on a CPU with AVX-512/AMX kernels, not on others): a learning claim holds over
    seeds, not for one numerically fragile trajectory."""
    dataset = write_samples(tmp_path / "samples.jsonl")
    samples = load_samples(dataset)
    before = heldout_length_score(word_model, samples)
    learnt, means = [], []
    for seed in SEEDS:
        cfg = TrainConfig.model_validate(
            {
                "model": word_model,
                "dataset": dataset,
                "output_dir": str(tmp_path / f"run{seed}"),
                "judge": {"backend": "rule", "rule": {"name": "length_fit", "tolerance": 5}},
                "reward": {"position": "reference_first"},
                "curriculum": {"schedule": "dynamic", "wins_to_promote": 1},
                "grpo": {
                    "num_generations": 8,
                    "per_device_train_batch_size": 32,  # 4 prompts x 8 completions
                    "max_completion_length": 16,
                    "learning_rate": 2e-3,
                    "lr_scheduler_type": "constant",
                    "beta": 0.0,
                    "max_steps": 200,
                    "save_steps": 1000,
                    "report_to": ["none"],
                    "seed": seed,
                },
            }
        )
        run = train(cfg)
        after = heldout_length_score(str(run / "final"), samples)
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"reward"' in line]
        with CurriculumStore(run / "curriculum.sqlite") as store:
            promotions = len(store.events())
        print(f"seed {seed}: held-out S_l before {before}, after {after}; promotions {promotions}")
        assert promotions > 0 and rows[-1]["curriculum/mean_level"] > 0
        # each prompt's own target was learnt, not one length for both
        learnt.append(all(after[prompt] > before[prompt] + 10 for prompt in TARGETS))
        means.append(sum(after.values()) / 2)
    assert sum(learnt) >= 2, (before, learnt, means)
    assert sum(means) / len(means) > sum(before.values()) / 2 + 20
