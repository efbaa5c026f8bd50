"""`writing-rl train-verl`: the recipes composed with verl's own config and accepted by verl's validation,
one-line errors for bad recipes, API keys passed by name only, and the launch wiring inside a Ray cluster."""

import os
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("verl.trainer")  # not `verl`: tests/verl itself is importable as a namespace package

from writing_rl.cli import app  # noqa: E402
from writing_rl.config import ConfigError, load_config  # noqa: E402
from writing_rl.verl.launch import CHECKPOINTS, VerlRecipe, compose, prepare, train_verl  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> str:
    """A model folder verl's HFModelConfig accepts: a tiny Qwen2 config and a word-level tokenizer built here."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config

    out = tmp_path_factory.mktemp("tiny-qwen2")
    specials = ["<unk>", "<pad>", "<|end|>", "<|user|>", "<|assistant|>"]
    vocab = {t: i for i, t in enumerate(specials + ["write", "a", "story", "about", "the", "sea"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="<|end|>")
    tok.chat_template = "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    tok.save_pretrained(out)
    Qwen2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        architectures=["Qwen2ForCausalLM"],
    ).save_pretrained(out)
    return str(out)


def export_rows(out: Path, rows: int) -> None:
    """`train.parquet` with `rows` samples and `val.parquet` with 2, written by export-verl."""
    from writing_rl.data import Sample
    from writing_rl.verl.export import export_verl

    samples = [Sample(id=i, prompt="write a story", references=["a story"]) for i in range(rows + 2)]
    export_verl(samples[:rows], out, val=samples[rows:])


def recipe_file(tmp_path, name, model, rows: int = 40, **changes) -> Path:
    """A shipped recipe with the tiny model, exported data files (`rows` training rows; the recipes' batches are
    32 at most), and `changes` (dotted keys) applied."""
    data = yaml.safe_load((ROOT / "configs" / "verl" / name).read_text())
    data["verl"]["actor_rollout_ref"]["model"]["path"] = model
    export_rows(tmp_path, rows)
    for split in ("train", "val"):
        data["verl"]["data"][f"{split}_files"] = str(tmp_path / f"{split}.parquet")
    data["output_dir"] = str(tmp_path / "run")
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def composed(path: Path):
    recipe = load_config(path, VerlRecipe)
    return recipe, compose(recipe, Path(recipe.output_dir), str(path))


def test_ppo_paper_recipe_is_the_published_setting_in_verl_keys(tmp_path, tiny_model_dir):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy

    _, c = composed(recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir))
    actor, rollout = c.actor_rollout_ref.actor, c.actor_rollout_ref.rollout
    assert c.algorithm.adv_estimator == "gae" and need_critic(c)
    assert not need_reference_policy(c)  # KL off: no reference model at all
    assert (rollout.n, rollout.name, c.data.train_batch_size, actor.ppo_mini_batch_size) == (1, "vllm", 32, 16)
    assert (actor.optim.lr, c.critic.optim.lr) == (1e-6, 1e-5)
    assert (actor.optim.lr_warmup_steps_ratio, c.critic.optim.lr_warmup_steps_ratio) == (0.4, 0.05)
    assert actor.entropy_coeff == 0.001  # verl 0.9.1's default is 0; the published fork's was 0.001
    assert (c.data.max_response_length, rollout.response_length) == (10000, 10000)
    assert c.trainer.total_training_steps == 405
    assert c.critic.model.path == tiny_model_dir  # one model path, interpolated
    kwargs = c.reward.custom_reward_function.reward_kwargs
    assert (kwargs.reward.win, kwargs.reward.tie, kwargs.reward.loss, kwargs.unknown_score) == (1.1, 0.55, 0.1, 0.1)
    assert kwargs.judge.endpoint.api_key_env == "DASHSCOPE_API_KEY"
    assert c.trainer.checkpoint_callback_class == "writing_rl.verl.checkpoint.CurriculumCheckpoint"
    assert c.trainer.default_local_dir == str(tmp_path / "run" / CHECKPOINTS)
    assert c.reward.reward_manager.source == "importlib"


def test_gpu_smoke_recipe_fits_one_gpu(tmp_path, tiny_model_dir):
    _, c = composed(recipe_file(tmp_path, "smoke_tiny.yaml", tiny_model_dir))
    assert (c.trainer.n_gpus_per_node, c.actor_rollout_ref.rollout.tensor_model_parallel_size) == (1, 1)
    assert c.trainer.save_freq == c.trainer.total_training_steps == 2  # one checkpoint, then the resume


def test_grpo_recipe_has_groups_and_no_critic(tmp_path, tiny_model_dir):
    from verl.trainer.ppo.utils import need_critic

    _, c = composed(recipe_file(tmp_path, "grpo.yaml", tiny_model_dir))
    assert c.algorithm.adv_estimator == "grpo" and not need_critic(c)
    assert c.actor_rollout_ref.rollout.n == 8


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"verl.actor_rollout_ref.actor.entropy_coef": 0.1}, "verl.actor_rollout_ref.actor.entropy_coef: not a verl"),
        ({"verl.trainer.default_local_dir": "/x"}, "verl.trainer.default_local_dir: set by writing-rl"),
        ({"verl.actor_rollout_ref.actor.loss_agg_mode": "nonsense"}, "verl rejected the config: Invalid loss_agg_mode"),
        (
            {"verl.actor_rollout_ref.model.path": "/no/such/model"},
            "verl.actor_rollout_ref.model.path: /no/such/model: no",
        ),
        ({"verl.trainer.use_v1": False}, "verl.trainer.use_v1: must stay true"),
        ({"hydra_overrides": ["model_engine=nonsense"]}, "hydra_overrides:"),
        ({"curriculum_actor.forget_after_steps": 1, "curriculum_actor.flush_after_steps": 3}, "forget_after_steps"),
        ({"judge.endpoint.max_concurrency": 3, "verl.reward.num_workers": 4}, "judge.endpoint.max_concurrency: 3 is"),
        ({"verl.reward.reward_model.enable": True}, "verl.reward.reward_model.enable: a colocated reward model"),
    ],
)
def test_bad_recipes_fail_with_one_line_naming_the_key(tmp_path, tiny_model_dir, changes, message):
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, **changes)
    with pytest.raises(ConfigError, match=message) as err:
        composed(path)
    assert "\n" not in str(err.value)
    result = CliRunner().invoke(app, ["train-verl", str(path), "--skip-check"])
    assert result.exit_code == 2 and message.split(":")[0] in result.output


def test_model_folder_checked_without_a_critic(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="verl.actor_rollout_ref.model.path: .*no-such-model: no such folder"):
        composed(recipe_file(tmp_path, "grpo.yaml", str(tmp_path / "no-such-model")))


def test_check_accepts_the_recipe_and_names_a_missing_key_variable(tmp_path, tiny_model_dir, monkeypatch):
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["check", str(path)])  # the run needs it: a failure, before any request
    assert result.exit_code == 2
    assert "judge.endpoint.api_key_env: environment variable DASHSCOPE_API_KEY is not set" in result.output
    # --skip-endpoints checks what can be checked without the judge: the missing key is a note, not a failure
    result = CliRunner().invoke(app, ["check", str(path), "--skip-endpoints"])
    assert result.exit_code == 0, result.output
    note = (
        "  note  judge.endpoint.api_key_env: environment variable DASHSCOPE_API_KEY is not set: not needed for "
        "--skip-endpoints; export it before train-verl"
    )
    assert note in result.output.splitlines()
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    result = CliRunner().invoke(app, ["check", str(path), "--skip-endpoints"])
    assert result.exit_code == 0, result.output
    assert "verl config" in result.output and "accepted by verl's validate_config (gae)" in result.output
    assert "  note  " not in result.output
    assert f"ok  verl.actor_rollout_ref.model.path: {tiny_model_dir} (local folder)" in result.output
    assert "ok  verl.data: 40 training rows, 1 step of 32 prompts per epoch" in result.output


def test_run_folder_holds_configs_but_never_the_key(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir)
    _, config, run_dir = prepare(path)
    assert {p.name for p in run_dir.iterdir()} == {"config.yaml", "verl_config.yaml"}
    assert "DASHSCOPE_API_KEY" in (run_dir / "verl_config.yaml").read_text()  # named...
    assert not any(SECRET in p.read_text() for p in run_dir.iterdir())  # ...never stored
    (run_dir / "curriculum.sqlite").write_bytes(b"")  # a curriculum but no checkpoint to resume
    with pytest.raises(ConfigError, match="holds a curriculum but no verl checkpoint"):
        prepare(path)
    prepare(path, overwrite=True)
    assert not (run_dir / "curriculum.sqlite").exists()


def test_launch_starts_ray_with_the_key_and_the_curriculum_actor(tmp_path, tiny_model_dir, monkeypatch):
    """train_verl up to verl's TaskRunner, replaced by one that checks what a verl worker would find."""
    import ray

    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))  # the workers import writing_rl
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, **{"verl.ray_kwargs.ray_init.num_cpus": 2})

    @ray.remote(num_cpus=0)
    class ProbeRunner:
        def run(self, config):
            import asyncio
            import os

            from verl.trainer.ppo.checkpoint_callback import build_checkpoint_callback

            from writing_rl.verl.curriculum_actor import connect_curriculum

            assert os.environ["DASHSCOPE_API_KEY"] == SECRET  # passed by name to the workers
            callback = build_checkpoint_callback(config)  # finds the actor by the recipe's name; nothing to restore
            cur = connect_curriculum(config.reward.custom_reward_function.reward_kwargs.curriculum)
            level = asyncio.run(cur.assign("u", "s", 2, 1))
            asyncio.run(cur.report("u", "u/0", "s", 2, level, "win", 1))  # rollout.n = 1: decided at once
            folder = os.path.join(config.trainer.default_local_dir, "global_step_1")
            callback.on_save(trainer=None, global_step=1, checkpoint_dir=folder)
            return folder

    real_init = ray.init

    def init_like_a_remote_cluster(*args, **kwargs):  # the workers get the key from runtime_env, not inherited
        os.environ.pop("DASHSCOPE_API_KEY")
        return real_init(*args, **kwargs)

    monkeypatch.setattr(ray, "init", init_like_a_remote_cluster)
    run_dir = train_verl(path, task_runner_class=ProbeRunner)
    assert not ray.is_initialized()  # shut down after the run
    from writing_rl.curriculum import CurriculumStore

    with CurriculumStore(run_dir / "curriculum.sqlite") as store:
        assert store.levels() == {"s": 1}  # the actor wrote the run folder's store
    assert (run_dir / CHECKPOINTS / "global_step_1" / "writing_rl_curriculum.json").is_file()
    assert not any(SECRET in p.read_text(errors="ignore") for p in run_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize("command", [["check", "--skip-endpoints"], ["train-verl", "--skip-check"], ["train-verl"]])
def test_an_untested_verl_is_named_before_verl_is_used(tmp_path, tiny_model_dir, monkeypatch, command):
    """`check` and `train-verl` (with or without the pre-flight check) stop on a verl outside the tested range,
    naming it and the range, before composing verl's config or starting Ray."""
    import ray

    from writing_rl.verl import version

    def untouched(*args, **kwargs):
        raise AssertionError("Ray was started before verl's version was checked")

    monkeypatch.setattr(version, "installed_version", lambda name: "0.10.0")
    monkeypatch.setattr(ray, "init", untouched)
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir)
    result = CliRunner().invoke(app, [command[0], str(path), *command[1:]])
    assert result.exit_code == 2, result.output
    assert "verl 0.10.0 is not a version writing-rl's verl integration was tested with (0.9.x: >=0.9.0,<0.10)" in (
        result.output
    )
    monkeypatch.setitem(sys.modules, "verl.trainer.main_ppo", None)  # as if verl's trainer had moved: ImportError
    with pytest.raises(ConfigError, match="verl 0.10.0 is not a version"):
        train_verl(path)


# -- mistakes that verl would accept, or find late --------------------------------------------------------------
PLACEHOLDER = yaml.safe_load((ROOT / "configs/verl/ppo_paper.yaml").read_text())["verl"]["actor_rollout_ref"]["model"]


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; verl may not read a model at all (it would go to the hub for a name it lacks)."""
    import huggingface_hub.constants

    from writing_rl.verl import launch

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))

    def verl_reads_the_model(*args, **kwargs):
        raise AssertionError("verl's validation (which reads the model) ran before the model path was checked")

    monkeypatch.setattr(launch, "validate", verl_reads_the_model)
    return tmp_path / "hub-cache"


def test_the_shipped_placeholder_model_is_named_before_verl_reads_it(tmp_path, empty_hub_cache, monkeypatch):
    placeholder = PLACEHOLDER["path"]
    assert placeholder == "models/qwen2.5-7b-instruct-writingbench-sft" and not Path(placeholder).exists()
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    path = recipe_file(tmp_path, "ppo_paper.yaml", placeholder)
    result = CliRunner().invoke(app, ["check", str(path), "--skip-endpoints"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        f"recipe: verl.actor_rollout_ref.model.path: {placeholder}: no such folder here ({Path.cwd()}), and no hub "
        "model of that name in the local Hugging Face cache"
    )
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["train-verl", str(path), "--skip-check"])  # the launch checks it too
    assert result.exit_code == 2 and "verl.actor_rollout_ref.model.path: models/qwen2.5" in result.output


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"verl.actor_rollout_ref.model.path": "embedded:smollm2-135m-instruct"}, "which verl cannot read"),
        ({"verl.actor_rollout_ref.model.path": "Org/NotCached"}, "Org/NotCached: no such folder here"),
        ({"verl.critic.model.path": "/no/critic"}, "verl.critic.model.path: /no/critic: no such folder"),
    ],
)
def test_model_paths_verl_cannot_read_are_named(tmp_path, tiny_model_dir, empty_hub_cache, changes, message):
    with pytest.raises(ConfigError, match=message):
        composed(recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, **changes))


def test_a_hub_model_in_the_cache_is_accepted(empty_hub_cache):
    from writing_rl.verl.launch import check_model_path

    snapshot = empty_hub_cache / "models--Org--Tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (empty_hub_cache / "models--Org--Tiny" / "refs").mkdir()
    (empty_hub_cache / "models--Org--Tiny" / "refs" / "main").write_text("abc123")
    assert check_model_path("verl.m", "Org/Tiny") == "verl.m: Org/Tiny (in the Hugging Face cache)"
    with pytest.raises(ConfigError, match="Org/Other: no such folder here .*`hf download Org/Other`"):
        check_model_path("verl.m", "Org/Other")


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("train_batch_size", "32", "verl.data.train_batch_size: '32' is text, but verl reads a whole number there"),
        ("train_batch_size", 32.5, "train_batch_size: 32.5 is a number, but verl reads a whole number"),
        ("max_prompt_length", "lots", "max_prompt_length: 'lots' is text, but verl reads a whole number"),
        ("shuffle", "yes", "verl.data.shuffle: 'yes' is text, but verl reads true/false there"),
        ("train_files", 5, "train_files: 5 is a whole number, but verl reads text \\(or a list of them\\)"),
        ("custom_cls", "mine.py", "verl.data.custom_cls: 'mine.py' is text, but verl reads a mapping there"),
        (
            "truncation",
            None,
            "verl.data.truncation: None is null, but verl reads text there \\(its default: 'error'\\)",
        ),
    ],
)
def test_verl_data_values_of_the_wrong_type_are_named(tmp_path, tiny_model_dir, key, value, message):
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, **{f"verl.data.{key}": value})
    with pytest.raises(ConfigError, match=message):
        composed(path)


def test_verl_data_values_of_verls_types_pass(tmp_path, tiny_model_dir):
    train = str(tmp_path / "train.parquet")
    changes = {"verl.data.train_files": [train, train], "verl.data.seed": 7, "verl.data.custom_cls.path": None}
    _, c = composed(recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, **changes))
    assert list(c.data.train_files) == [train, train] and c.data.seed == 7


def test_a_batch_larger_than_the_training_data_is_named_with_both_numbers(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, rows=10)
    result = CliRunner().invoke(app, ["check", str(path), "--skip-endpoints"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        f"verl.data.train_batch_size: 32 prompts per step, but the training data has 10 rows ({tmp_path}/train.parquet)"
    )
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, rows=40, **{"verl.data.train_max_samples": 20})
    result = CliRunner().invoke(app, ["check", str(path), "--skip-endpoints"])
    assert result.exit_code == 2 and "has 20 rows (train_max_samples: 20)" in result.output
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir)
    (tmp_path / "train.parquet").write_bytes(b"not parquet")
    result = CliRunner().invoke(app, ["check", str(path), "--skip-endpoints"])
    assert result.exit_code == 2 and "train.parquet: not readable as parquet" in result.output


def test_a_dead_judge_gets_a_hint_a_recipe_can_follow(tmp_path, tiny_model_dir):
    from writing_rl.server import free_port

    port = free_port()
    changes = {"judge.endpoint.base_url": f"http://127.0.0.1:{port}/v1"}
    result = CliRunner().invoke(
        app, ["check", str(recipe_file(tmp_path, "smoke_tiny.yaml", tiny_model_dir, **changes))]
    )
    assert result.exit_code == 2, result.output
    assert f"judge.endpoint: cannot reach http://127.0.0.1:{port}/v1" in result.output
    assert f"start the judge server first (`writing-rl serve-judge --port {port}`" in result.output
    assert "point judge.endpoint.base_url at a running one" in result.output
    assert "local_judge" not in result.output  # a recipe has no such section: it would be refused
    changes = {"judge.endpoint.base_url": "local"}
    result = CliRunner().invoke(
        app, ["check", str(recipe_file(tmp_path, "smoke_tiny.yaml", tiny_model_dir, **changes))]
    )
    assert result.exit_code == 2 and "judge.endpoint.base_url: 'local' starts the embedded judge" in result.output
    assert "writing-rl serve-judge" in result.output and "local_judge" not in result.output


def test_a_pointwise_recipe_checks_and_passes_on_the_critics_endpoint(tmp_path, tiny_model_dir, monkeypatch):
    """With a separate critic the workers call only the critic: its key goes to them (the judge's is not needed),
    its concurrency is split over the reward workers, and `check` probes it."""
    from writing_rl.verl.launch import key_variables

    critic = {"endpoint": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "WRL_CRITIC_KEY", "max_concurrency": 2}}
    changes = {"reward.kind": "pointwise", "curriculum.schedule": "none", "critic": critic}
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, **changes)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.setenv("WRL_CRITIC_KEY", SECRET)
    with pytest.raises(ConfigError, match=r"critic.endpoint.max_concurrency: 2 .*4"):  # 4 reward workers
        composed(path)
    critic["endpoint"]["max_concurrency"] = 8
    path = recipe_file(tmp_path, "ppo_paper.yaml", tiny_model_dir, **changes)
    recipe, _ = composed(path)
    assert key_variables(recipe) == {"WRL_CRITIC_KEY": SECRET}
    result = CliRunner().invoke(app, ["check", str(path), "--skip-endpoints"])
    assert result.exit_code == 0, result.output
    assert "critic.endpoint: http://127.0.0.1:9/v1" in result.output and "DASHSCOPE" not in result.output


def test_strip_thinking_tells_the_reward_workers_whether_the_template_opens_the_thinking(tmp_path, tiny_model_dir):
    import shutil

    from transformers import AutoTokenizer

    opens = tmp_path / "r1-like"
    shutil.copytree(tiny_model_dir, opens)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template += "{% if add_generation_prompt %}<|assistant|> <think>\n{% endif %}"
    tok.save_pretrained(opens)
    said = {}
    for model in (tiny_model_dir, str(opens)):
        _, c = composed(recipe_file(tmp_path, "grpo.yaml", model, **{"reward.strip_thinking": True}))
        said[model] = c.reward.custom_reward_function.reward_kwargs.thinking_opened
    assert said == {tiny_model_dir: False, str(opens): True}
    _, c = composed(recipe_file(tmp_path, "grpo.yaml", str(opens)))  # off: nothing read, nothing passed
    assert "thinking_opened" not in c.reward.custom_reward_function.reward_kwargs
