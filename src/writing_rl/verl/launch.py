"""`writing-rl train-verl RECIPE`: verl's own PPO config plus our recipe -> Ray, the curriculum actor, verl.

A recipe is our YAML: `judge`, `reward`, `curriculum` (the same sections as `writing-rl train`), the
curriculum actor's settings, Ray's, and a `verl:` mapping of verl 0.9.1 settings. The verl config is
composed the way `python -m verl.trainer.main_ppo` composes it (hydra, `verl/trainer/config/ppo_trainer.yaml`),
the `verl:` mapping is merged on top (a key verl does not have is an error, as on verl's command line), our
wiring is set (reward function and manager, checkpoint callback, checkpoint folder), and verl's own
`validate_config` checks the result, plus its model config for the actor and critic (which loads the
tokenizer and the model's config, not the weights).

Run folder (`output_dir`): `config.yaml` (the recipe as given), `verl_config.yaml` (what verl runs),
`curriculum.sqlite`, `metrics.jsonl` and `rollouts.jsonl` (the curriculum actor's), `verl_metrics-<started>.jsonl`
(verl's own metrics, one file per launch, with `trainer.logger: [file]`), `checkpoints/global_step_N/` (verl's,
plus `writing_rl_curriculum.json`). API keys are read from the environment at launch and handed to Ray's workers
by variable name (`runtime_env.env_vars`); no file and no log line holds them.

verl and Ray are imported lazily: this module loads in the main environment too (`writing-rl check`).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import run_layout as layout
from ..critic import CriticConfig
from ..curriculum import CurriculumConfig
from ..endpoint.config import check_concurrency
from ..errors import ConfigError
from ..judge import JudgeConfig
from ..pointwise import called_endpoint, reward_setup_problem
from ..reward import ExtraRewards, RewardConfig
from ..rollouts import RolloutSettings
from ..run_layout import VERL_METRICS
from .groups import DEFAULT_ACTOR_NAME, FlushSettings
from .version import check_verl_version

REWARD_FUNCTION = ("pkg://writing_rl.verl.reward", "compute_score")
REWARD_MANAGER = ("pkg://writing_rl.verl.reward_manager", "WritingRewardManager")
CHECKPOINT_CALLBACK = "writing_rl.verl.checkpoint.CurriculumCheckpoint"
CHECKPOINTS = "checkpoints"
# verl keys our wiring sets; a recipe that sets them too is refused rather than silently overridden.
WIRED = (
    "reward.custom_reward_function",
    "reward.reward_manager",
    "trainer.checkpoint_callback_class",
    "trainer.default_local_dir",
)


class ActorSettings(FlushSettings):
    name: str = Field(DEFAULT_ACTOR_NAME, description="the Ray actor's name (the reward workers look it up)")


class RaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="an existing cluster ('auto', 'ray://host:10001'); none: start one")
    namespace: str = "writing-rl"
    pass_env: list[str] = Field(
        default_factory=list, description="more environment variables for the workers, by name (e.g. WANDB_API_KEY)"
    )


class VerlRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output_dir: str = "runs/verl"
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    critic: CriticConfig | None = Field(
        None, description="reward.kind pointwise with an LLM judge: the pointwise critic (null: the judge's endpoint)"
    )
    unknown_score: float | None = Field(
        None, description="verl's score for an unknown verdict (it needs a number; null: `reward.loss`); moves nothing"
    )
    extras: ExtraRewards = Field(default_factory=ExtraRewards)
    rollouts: RolloutSettings = Field(default_factory=RolloutSettings)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    curriculum_actor: ActorSettings = Field(default_factory=ActorSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    hydra_overrides: list[str] = Field(
        default_factory=list, description="hydra overrides applied while composing (config-group choices)"
    )
    verl: dict[str, Any] = Field(default_factory=dict, description="verl 0.9.1 settings, nested as in ppo_trainer.yaml")

    @field_validator("judge")
    @classmethod
    def _no_budget(cls, judge: JudgeConfig) -> JudgeConfig:
        if judge.budget.limits:  # a budget nobody keeps would be worse than none
            raise ValueError(
                "budget: only `writing-rl train` keeps a judge budget, train-verl does not: remove it "
                "(`writing-rl check` shows the run's estimated cost)"
            )
        return judge

    @model_validator(mode="after")
    def _reward_set_up(self) -> VerlRecipe:
        if problem := reward_setup_problem(self.reward.kind, self.curriculum.schedule, self.judge, self.critic):
            raise ValueError(problem)
        return self


# -- composing verl's config ------------------------------------------------------------------------------
def verl_config_dir() -> Path:
    """verl's config folder, after the version check (`check` and `train-verl` both compose through here)."""
    check_verl_version()
    try:
        import verl
    except ImportError as err:
        raise ConfigError(f"verl is installed but cannot be imported here ({err}): use the verl environment") from None
    return Path(verl.__file__).parent / "trainer" / "config"


def reward_kwargs(recipe: VerlRecipe) -> dict[str, Any]:
    """The reward function's settings (`writing_rl.verl.reward`), JSON-able; API keys only by variable name."""
    return {
        "curriculum": recipe.curriculum_actor.name,
        "judge": recipe.judge.model_dump(mode="json"),
        "reward": recipe.reward.model_dump(mode="json"),
        "critic": None if recipe.critic is None else recipe.critic.model_dump(mode="json"),
        "extras": recipe.extras.model_dump(mode="json"),
        "rollouts": recipe.rollouts.model_dump(mode="json"),
        "unknown_score": recipe.unknown_score,
    }


def thinking_kwargs(recipe: VerlRecipe, config: Any) -> dict[str, Any]:
    """Under reward.strip_thinking: whether the policy's chat template opens <think> in the prompt (read from its
    tokenizer, with verl's chat-template options), which the reward workers cannot see."""
    if not recipe.reward.strip_thinking:
        return {}
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from ..thinking import template_opens_thinking

    path = str(OmegaConf.select(config, "actor_rollout_ref.model.path"))
    options = OmegaConf.select(config, "data.apply_chat_template_kwargs", default=None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"verl.actor_rollout_ref.model.path: {path}: no tokenizer to read ({err})") from None
    kwargs = OmegaConf.to_container(options) if options is not None else {}
    return {"thinking_opened": template_opens_thinking(tokenizer, **kwargs)}


def compose(recipe: VerlRecipe, run_dir: Path, source: str = "recipe") -> Any:
    """verl's DictConfig for this recipe, validated by verl; raises ConfigError naming the key."""
    config_dir = verl_config_dir()  # first: names the environment problem where verl is missing
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    for key in WIRED:
        if OmegaConf.select(OmegaConf.create(recipe.verl), key, default=None) is not None:
            raise ConfigError(f"{source}: verl.{key}: set by writing-rl (remove it from the recipe)")
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            config = hydra_compose(config_name="ppo_trainer", overrides=recipe.hydra_overrides)
    except HydraException as err:
        raise ConfigError(f"{source}: hydra_overrides: {' '.join(str(err).split())}") from None
    data_defaults = config.data
    try:
        config = OmegaConf.merge(config, recipe.verl)
    except (ConfigAttributeError, ConfigKeyError) as err:
        raise ConfigError(f"{source}: verl.{err.full_key}: not a verl 0.9.1 setting") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: verl.{err.full_key}: {str(err).splitlines()[0]}") from None
    fn_path, fn_name = REWARD_FUNCTION
    manager_path, manager_name = REWARD_MANAGER
    with open_dict(config):
        config.reward.custom_reward_function = {
            "path": fn_path,
            "name": fn_name,
            "reward_kwargs": reward_kwargs(recipe)
            | {"reward_workers": int(config.reward.num_workers)}
            | thinking_kwargs(recipe, config),
        }
        if called := called_endpoint(recipe.reward.kind, recipe.judge, recipe.critic):  # each worker needs a share
            check_concurrency(called[1], int(config.reward.num_workers), f"{source}: {called[0]}")
        config.reward.reward_manager.source = "importlib"
        config.reward.reward_manager.name = manager_name
        config.reward.reward_manager.module.path = manager_path
        config.trainer.checkpoint_callback_class = CHECKPOINT_CALLBACK
        config.trainer.default_local_dir = str(run_dir / CHECKPOINTS)
    check_data_types(data_defaults, recipe.verl.get("data"), source)
    model_paths(config, f"{source}: ")  # before verl reads them: a hub name it cannot find costs a minute of retries
    validate(config, source)
    return config


# verl documents these two as "a list or a single file" (legacy_data.yaml); its default for each is one file.
FILE_LISTS = ("train_files", "val_files")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__


def _fits(value: Any, default: Any, key: str) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        files = key in FILE_LISTS and isinstance(value, list) and all(isinstance(v, str) for v in value)
        return isinstance(value, str) or files
    return isinstance(value, list) if isinstance(default, list) else True


def check_data_types(defaults: Any, given: Any, source: str = "recipe", prefix: str = "data") -> None:
    """verl has no dataclass for `data` (its `legacy_data.yaml` is plain YAML that the trainer and `RLHFDataset`
    read with `.get`, so verl itself never checks a value's type): each value the recipe gives must have the type
    of verl's own default for that key (a default that is null or an interpolation says nothing and is not
    checked). Unknown keys were already refused by the merge."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(given, dict):
        return  # not a mapping: the merge has said so
    for key, value in given.items():
        if key not in defaults or OmegaConf.is_interpolation(defaults, key):
            continue
        where = f"{source}: verl.{prefix}.{key}"
        default = defaults[key]
        if isinstance(default, DictConfig):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {value!r} is {_kind(value)}, but verl reads a mapping there")
            check_data_types(default, value, source, f"{prefix}.{key}")
            continue
        default = OmegaConf.to_container(default) if OmegaConf.is_config(default) else default
        if default is not None and not _fits(value, default, key):
            more = " (or a list of them)" if key in FILE_LISTS else ""
            raise ConfigError(
                f"{where}: {value!r} is {_kind(value)}, but verl reads {_kind(default)}{more} there "
                f"(its default: {default!r})"
            )


def model_paths(config: Any, prefix: str = "") -> list[str]:
    """The policy's model (and the critic's, where there is one) is a local transformers folder or a hub model
    already in the local Hugging Face cache: checked before verl reads it, naming the key."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic

    keys = ["actor_rollout_ref.model.path"] + (["critic.model.path"] if need_critic(config) else [])
    lines = []
    for key in keys:
        name = OmegaConf.select(config, key)
        if key != keys[0] and name == OmegaConf.select(config, keys[0]):
            continue  # the critic starts from the policy's model (the recipes' `${actor_rollout_ref.model.path}`)
        lines.append(check_model_path(f"{prefix}verl.{key}", str(name)))
    return lines


def check_model_path(field: str, name: str) -> str:
    """`preflight.check_model`, then what verl needs beyond it: no embedded model (only `writing-rl train` converts
    it), and no hub name that is not in the cache yet (verl's workers would each try to fetch it)."""
    from huggingface_hub import try_to_load_from_cache

    from ..models import EMBEDDED_MODEL
    from ..preflight import CheckFailed, check_model

    if name == EMBEDDED_MODEL:
        raise CheckFailed(
            f"{field}: {name} is the embedded model of `writing-rl train`, which verl cannot read: give the folder "
            "of a transformers model"
        )
    line = check_model(field, name)  # a folder without config.json, a path that is not there, a malformed name
    if Path(name).expanduser().exists() or isinstance(try_to_load_from_cache(name, "config.json"), str):
        return line
    raise CheckFailed(
        f"{field}: {name}: no such folder here ({Path.cwd()}), and no hub model of that name in the local "
        f"Hugging Face cache: give the folder of a transformers model, or fetch the hub model first "
        f"(`hf download {name}`)"
    )


def validate(config: Any, source: str = "recipe") -> None:
    """verl's own checks (main_ppo's `validate_config`), then the model configs its workers will build."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    rm = config.reward.reward_model
    if rm.enable and not rm.get("enable_resource_pool", False):
        raise ConfigError(
            f"{source}: verl.reward.reward_model.enable: a colocated reward model sends the reward rows without "
            "data_source, uid or extra_info, which the judge reward needs (set enable_resource_pool: true or leave it off)"
        )
    if not config.trainer.use_v1:
        raise ConfigError(
            f"{source}: verl.trainer.use_v1: must stay true (only the v1 trainer calls checkpoint callbacks)"
        )
    try:
        use_critic = need_critic(config)
        validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=use_critic)
        omega_conf_to_dataclass(config.actor_rollout_ref.model)
        if use_critic:
            omega_conf_to_dataclass(config.critic.model)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: verl.{err.full_key}: {' '.join(str(err).split()[:12])}") from None
    except (HydraException, AssertionError, ValueError, RuntimeError, OSError, TypeError) as err:
        while err.__cause__ is not None:  # hydra wraps the dataclass's own complaint
            err = err.__cause__  # type: ignore[assignment]
        raise ConfigError(f"{source}: verl rejected the config: {' '.join(str(err).split())}") from None


# -- launching ------------------------------------------------------------------------------------------
def _named_variables(recipe: VerlRecipe) -> list[tuple[str, str]]:
    """(recipe key, variable name) for each variable the workers need: the key of the endpoint the reward calls."""
    called = called_endpoint(recipe.reward.kind, recipe.judge, recipe.critic)
    named = [(f"{called[0]}.api_key_env", called[1].api_key_env)] if called else []
    return [(k, n) for k, n in named + [(f"ray.pass_env.{i}", n) for i, n in enumerate(recipe.ray.pass_env)] if n]


def missing_variables(recipe: VerlRecipe) -> list[str]:
    """'judge.endpoint.api_key_env: environment variable X is not set' for each one not set here."""
    return [f"{k}: environment variable {n} is not set" for k, n in _named_variables(recipe) if n not in os.environ]


def key_variables(recipe: VerlRecipe) -> dict[str, str]:
    """Values of the variables the workers need, read now; a missing one is an error naming it and its key."""
    if missing := missing_variables(recipe):
        raise ConfigError(f"{missing[0]} (export it first)")
    return {n: os.environ[n] for _, n in _named_variables(recipe)}


def train_rows(paths: list[str]) -> int:
    """Rows in verl's training parquet files (their metadata only)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in paths)


def prepare_run_folder(run_dir: Path, overwrite: bool, resumes: bool) -> None:
    """A folder with curriculum state but no checkpoint to resume would mix two runs: refuse unless asked."""
    stale = [run_dir / n for n in (layout.CURRICULUM_STORE, layout.METRICS) if (run_dir / n).exists()]
    if overwrite:
        for path in [*stale, run_dir / CHECKPOINTS]:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            (run_dir / f"curriculum.sqlite{suffix}").unlink(missing_ok=True)
    elif stale and not resumes:
        raise ConfigError(
            f"{run_dir} holds a curriculum but no verl checkpoint to resume: "
            "use another output_dir, or --overwrite to start over"
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def prepare(recipe_path: Path, output_dir: str | None = None, overwrite: bool = False) -> tuple[VerlRecipe, Any, Path]:
    """Recipe -> validated verl config and a run folder holding both (no Ray yet, nothing secret written)."""
    check_verl_version()  # before the verl imports below (`.checkpoint` imports verl's trainer)
    from omegaconf import OmegaConf
    from verl.utils.device import auto_set_device

    from ..config import load_config
    from .checkpoint import resume_folder

    recipe = load_config(recipe_path, VerlRecipe)
    run_dir = Path(output_dir or recipe.output_dir).resolve()
    config = compose(recipe, run_dir, str(recipe_path))
    auto_set_device(config)
    key_variables(recipe)  # fail before anything is written
    prepare_run_folder(run_dir, overwrite, resumes=resume_folder(config) is not None)
    shutil.copyfile(recipe_path, run_dir / layout.CONFIG)
    (run_dir / "verl_config.yaml").write_text(OmegaConf.to_yaml(config), encoding="utf-8")
    return recipe, config, run_dir


def worker_env(recipe: VerlRecipe, config: Any, run_dir: Path) -> dict[str, Any]:
    """Ray's runtime_env as run_ppo would build it (verl's defaults + `ray_kwargs.ray_init.runtime_env`), plus
    verl's file logger path and the variables the recipe names."""
    from omegaconf import OmegaConf
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    user = config.ray_kwargs.get("ray_init", {}).get("runtime_env", {})
    runtime_env: dict[str, Any] = OmegaConf.to_container(  # type: ignore[assignment]
        OmegaConf.merge(get_ppo_ray_runtime_env(config), user), resolve=True
    )
    env_vars = runtime_env.setdefault("env_vars", {})
    started = time.strftime("%Y%m%d-%H%M%S")
    env_vars["VERL_FILE_LOGGER_PATH"] = str(run_dir / VERL_METRICS.format(started=started))  # trainer.logger `file`
    env_vars.update(key_variables(recipe))
    return runtime_env


def train_verl(
    recipe_path: Path, output_dir: str | None = None, overwrite: bool = False, task_runner_class: Any = None
) -> Path:
    """Start Ray (or join `ray.address`), the curriculum actor, then verl's `run_ppo`; returns the run folder."""
    check_verl_version()  # before verl's trainer imports below, which differ between verl releases
    import ray
    from omegaconf import OmegaConf
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo

    from .curriculum_actor import start_curriculum
    from .groups import GroupSettings

    recipe, config, run_dir = prepare(recipe_path, output_dir, overwrite)
    ray_init = OmegaConf.to_container(config.ray_kwargs.get("ray_init", {}), resolve=True) or {}
    ray_init.pop("runtime_env", None)  # type: ignore[union-attr]
    # started here, not by run_ppo: it would print its ray.init arguments, and with them the workers' variables
    ray.init(
        address=recipe.ray.address,
        namespace=recipe.ray.namespace,
        runtime_env=worker_env(recipe, config, run_dir),
        **ray_init,  # type: ignore[arg-type]
    )
    try:
        groups = GroupSettings(
            group_size=config.actor_rollout_ref.rollout.n, **recipe.curriculum_actor.model_dump(exclude={"name"})
        )
        # keep the handle: Ray ends a non-detached actor once its last handle goes
        curriculum = start_curriculum(
            run_dir, recipe.curriculum, groups, name=recipe.curriculum_actor.name, rollouts=recipe.rollouts
        )
        run_ppo(config, task_runner_class=task_runner_class or TaskRunnerV1)
        ray.get(curriculum.finish.remote())
    finally:
        ray.shutdown()
    return run_dir
