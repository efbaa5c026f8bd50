"""`writing-rl check`: everything a run needs, checked before the run creates anything.

`train`, `select`, `build-refs` and `eval` run the same checks first (unless `--skip-check`): the config
(including the keys and values `trl.GRPOConfig` accepts), every input file, every model, and every
endpoint the run will call (reachable, API key present, answers one tiny request; a soft judge must
return log-probabilities). A failure is a `CheckFailed`: one line naming the field, path or URL and
what to do about it. Data files are read with the loaders the run uses, so a bad line is reported
exactly as the run would report it, and endpoints are asked through the run's client (`endpoint.client`), so
a reply is read as the run reads it. TRL's vLLM server, which TRL's own client calls, is probed with httpx.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from .config import ConfigError, LocalJudgeSettings, did_you_mean
from .endpoint import EndpointConfig, EndpointError, OpenAICompatClient
from .endpoint.client import ModelListing
from .generation import GeneratorConfig
from .judge import JudgeConfig
from .pointwise import called_endpoint, critic_for
from .reward import RewardConfig

T = TypeVar("T")
ConfigKind = Literal["train", "ablation", "build-refs", "select", "eval", "verl"]


class CheckFailed(ConfigError):
    """A pre-flight check failed; the message is one line saying what and where (one line per problem when
    a check reports several at once, as `Problems` does)."""


class Problems:
    """Runs the steps of a check and goes on past a failed one, so a config's problems are reported all at
    once: `run` records a step's `ConfigError` (so `CheckFailed`) message, or holds a data file error (a bad
    sample line); `raise_if_any` raises one `CheckFailed` listing them all, one a line. A data file error
    alone is re-raised as it is (the commands exit 1 for it, as `validate` does)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.data_errors: list[Exception] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def run(self, step: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """`step(*args, **kwargs)`, or None when it failed (its problem recorded)."""
        from .data import SampleFileError
        from .jsonl import JsonlFileError

        try:
            return step(*args, **kwargs)
        except ConfigError as err:
            self.add(str(err))
        except (SampleFileError, JsonlFileError) as err:
            self.data_errors.append(err)
        return None

    def __bool__(self) -> bool:
        return bool(self.messages or self.data_errors)

    def raise_if_any(self) -> None:
        if self.data_errors and not self.messages:
            raise self.data_errors[0]
        if self:
            raise CheckFailed("\n".join([*self.messages, *(str(e) for e in self.data_errors)]))


def one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# the keys that only one command's config has, in the order `config_kind` looks for them (train has none)
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "build-refs": ("generators",),
    "select": ("policy", "pool"),
    "eval": ("tasks",),
    "verl": ("verl", "hydra_overrides", "curriculum_actor", "ray", "unknown_score"),
    "ablation": ("ablation",),
}
# the command that runs a config of each kind
COMMANDS: dict[str, str] = {
    "train": "train",
    "ablation": "ablation",
    "build-refs": "build-refs",
    "select": "select",
    "eval": "eval",
    "verl": "train-verl",
}


def config_kind(data: dict[str, Any]) -> ConfigKind:
    """Which command a config file is for, from the keys only that command takes."""
    for kind, keys in KIND_KEYS.items():
        if set(keys) & set(data):
            return kind  # type: ignore[return-value]
    return "train"


def config_model(kind: str) -> type[BaseModel]:
    """The schema of a config for `kind` (what `config_kind` returns)."""
    from .ablation import AblationConfig
    from .eval.runner import EvalConfig
    from .selection import BuildRefsConfig, SelectConfig
    from .training.config import TrainConfig
    from .verl.launch import VerlRecipe

    models = {"train": TrainConfig, "ablation": AblationConfig, "build-refs": BuildRefsConfig}
    return {**models, "select": SelectConfig, "eval": EvalConfig, "verl": VerlRecipe}[kind]


# -- models ------------------------------------------------------------------------------------------
def check_model(field: str, name: str) -> str:
    """Any model key (`model`, a generator's or eval's `transformers_model`, `eval --model-path`): a local
    folder must hold a transformers model, an `embedded:` name must be one of ours, anything else must be a
    hub id `Org/Model` (looked up in the local cache); a name that can be none of these (`runs/demo-1` that
    does not exist) is named by `field` before anything asks the hub."""
    from .models import EMBEDDED_MODEL, model_name_problem

    if problem := model_name_problem(name):
        raise CheckFailed(f"{field}: {problem}")
    if name == EMBEDDED_MODEL:
        check_embedded(field)
        return f"{field}: {name} (the embedded SmolLM2, converted on first use)"
    if Path(name).expanduser().is_dir():
        return f"{field}: {name} (local folder)"
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return f"{field}: {name} (in the Hugging Face cache)"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise CheckFailed(
            f"{field}: {name} is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE is set"
        )
    return f"{field}: {name} (not here: transformers will download it from the Hugging Face hub)"


def chat_template_text(name: str) -> str | None:
    """A model's chat template as text, read from its local folder or the Hugging Face cache without loading
    the tokenizer (None: no template found here, or the embedded model, which has no thinking)."""
    from .models import EMBEDDED_MODEL, model_name_problem

    folder = Path(name).expanduser()
    if name == EMBEDDED_MODEL or (not folder.is_dir() and model_name_problem(name)):  # `check_model` says why
        return None
    texts: list[str] = []
    for file in ("chat_template.jinja", "chat_template.json", "tokenizer_config.json"):
        if folder.is_dir():
            path: Path | None = folder / file if (folder / file).is_file() else None
        else:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, file)
            path = Path(cached) if isinstance(cached, str) else None
        if path is not None and path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts) or None


def check_thinking(field: str, model: str, reward: RewardConfig) -> str | None:
    """A policy whose chat template handles `<think>` blocks, trained with `reward.strip_thinking` off, has its
    reasoning judged with the answer and every `</think>` read as a control token by the injection screen."""
    if reward.strip_thinking:
        return "reward.strip_thinking: the judge reads each completion's answer after its last </think>"
    template = chat_template_text(model)
    if template is None or "</think>" not in template:
        return None
    return (
        f"warning: {field}: its chat template handles <think> blocks, and reward.strip_thinking is off: if the "
        "policy reasons, the judge reads the reasoning too, and the injection screen reads </think> as a control "
        "token (under injection: penalize such a completion loses). Set reward.strip_thinking: true to judge the "
        "answer only"
    )


def check_embedded(field: str) -> None:
    from .server import JudgeServerError, embedded_gguf_path

    try:
        embedded_gguf_path()
    except JudgeServerError as err:
        raise CheckFailed(f"{field}: {err}") from None


# -- endpoints ---------------------------------------------------------------------------------------
def start_hint(base_url: str, local_judge: bool = True) -> str:
    """What to do about a judge server that does not answer. `local_judge`: the config has a `local_judge` section
    (a verl recipe has none: its reward workers call a server that is already running)."""
    host = httpx.URL(base_url).host if base_url.startswith("http") else ""
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "::1"):
        if not local_judge:
            port = httpx.URL(base_url).port or 8080
            return (
                f"start the judge server first (`writing-rl serve-judge --port {port}` for the embedded judge; "
                "--host 0.0.0.0 and this host's address in base_url when Ray runs workers on other nodes), "
                "or point judge.endpoint.base_url at a running one"
            )
        return (
            "start the server (`writing-rl serve-judge --port N` for the embedded judge), fix base_url, "
            "or set local_judge.enabled: true with base_url: local"
        )
    return "start the server on that host or fix base_url (see docs/scale-out.md)"


def probe_endpoint(
    field: str,
    ep: EndpointConfig,
    logprobs: Literal["chat", "completions"] | None = None,
    top_logprobs: int = 5,
    local_judge: bool = True,
) -> str:
    """The API key is present, the server answers `/models` and one one-token request (with log-probs
    when `logprobs` names the route a soft judge reads them from). `local_judge`: see `start_hint`.

    Asked through the client the run uses (`endpoint.client`), so the check reads the reply with the run's
    shapes, headers and key; once each (no retries), within at most 30 s."""
    from .aio import run_sync

    client = OpenAICompatClient(ep.model_copy(update={"max_retries": 0, "timeout_s": min(ep.timeout_s, 30.0)}))
    try:
        client.check_credentials()
    except EndpointError:
        raise CheckFailed(
            f"{field}.api_key_env: environment variable {ep.api_key_env} is not set: export the API key for "
            f"{ep.base_url} in it, or remove api_key_env for a server without keys"
        ) from None
    if not ep.base_url.startswith(("http://", "https://")):
        raise CheckFailed(
            f"{field}.base_url: {ep.base_url!r} is not an http(s) URL (for example http://127.0.0.1:8000/v1)"
        )
    return run_sync(_probe(field, client, logprobs, top_logprobs, local_judge))


async def _probe(
    field: str,
    client: OpenAICompatClient,
    logprobs: Literal["chat", "completions"] | None,
    top_logprobs: int,
    local_judge: bool,
) -> str:
    from .reasons import Reason

    ep = client.config
    base = ep.base_url.rstrip("/")
    path = "completions" if logprobs == "completions" else "chat/completions"
    try:
        try:
            listed = await client.list_models()
        except EndpointError as err:
            raise CheckFailed(
                f"{field}: cannot reach {ep.base_url} ({one_line(str(err), 120)}); "
                + start_hint(ep.base_url, local_judge)
            ) from None
        if listed.status in (401, 403):
            fix = f"check the key in {ep.api_key_env}" if ep.api_key_env else "it wants a key: set api_key_env"
            raise CheckFailed(f"{field}: {ep.base_url} refused the request (HTTP {listed.status}): {fix}")
        served = listed.ids
        sampling = {"max_tokens": 1, "temperature": 0.0}
        try:
            if logprobs == "completions":
                result = await client.complete("Say OK.", top_logprobs=top_logprobs, **sampling)
            else:
                asked = top_logprobs if logprobs == "chat" else 0
                result = await client.chat([{"role": "user", "content": "Say OK."}], top_logprobs=asked, **sampling)
        except EndpointError as err:
            if err.status is not None:
                serves_other = served and ep.model not in served
                which = f"; it serves {', '.join(served)}, not {ep.model!r}: fix {field}.model" if serves_other else ""
                raise CheckFailed(
                    f"{field}: {base}/{path} answered HTTP {err.status}: {one_line(err.body, 160)}{which}"
                ) from None
            if err.reason is Reason.BAD_RESPONSE:
                raise CheckFailed(
                    f"{field}: {base}/{path} answered a reply the run cannot read ({one_line(str(err), 160)})"
                ) from None
            raise CheckFailed(
                f"{field}: {base}/{path} did not answer a one-token request ({one_line(str(err), 120)})"
            ) from None
    finally:
        await client.aclose()
    if logprobs and not any(tops for _, tops in result.token_logprobs):
        raise CheckFailed(
            f"{field}: {base}/{path} returned no log-probabilities, which soft mode reads: enable them on the "
            "server, or use the written verdict (mode: hard for a judge, json for a critic)"
        )
    note = (
        f" (it lists {', '.join(served)}, yet answered for {ep.model!r})" if served and ep.model not in served else ""
    )
    return f"{field}: {ep.base_url} answers model {ep.model!r}{' with log-probabilities' if logprobs else ''}{note}"


def check_endpoint(
    field: str,
    ep: EndpointConfig,
    local: LocalJudgeSettings | None,
    probe: bool,
    logprobs: Literal["chat", "completions"] | None = None,
    top_logprobs: int = 5,
) -> str:
    """`local`: the config's `local_judge` section, None where it has none (a verl recipe)."""
    if ep.base_url == "local":
        if local is None:
            raise CheckFailed(
                f"{field}.base_url: 'local' starts the embedded judge for `writing-rl train` and `eval` only: "
                f"{start_hint('http://127.0.0.1:8080/v1', local_judge=False)}"
            )
        if not local.enabled:
            raise CheckFailed(
                f"{field}.base_url is 'local' but local_judge.enabled is false: set local_judge.enabled: true, "
                "or give the server's URL"
            )
        check_embedded(field)
        return f"{field}: the embedded llama.cpp judge, started by the run"
    if not probe:
        return f"{field}: {ep.base_url} (not contacted: --skip-endpoints)"
    return probe_endpoint(field, ep, logprobs, top_logprobs, local_judge=local is not None)


def check_judge(field: str, judge: JudgeConfig, local: LocalJudgeSettings | None, probe: bool) -> str:
    if judge.backend == "rule":
        return f"{field}: rule judge, no endpoint"
    logprobs = judge.soft_via if judge.mode == "soft" else None
    return check_endpoint(f"{field}.endpoint", judge.endpoint, local, probe, logprobs, judge.top_logprobs)


def check_reward_endpoint(cfg: Any, local: LocalJudgeSettings | None, probe: bool) -> list[str]:
    """What scores the answers under `cfg.reward.kind`, and the endpoint it calls (`called_endpoint`), probed;
    `check` for `train` and for `train-verl` alike."""
    if cfg.reward.kind != "pointwise":
        return [check_judge("judge", cfg.judge, local, probe)]
    lines = [
        f"reward.kind: pointwise: each answer is scored alone, no reference is read; the curriculum schedules "
        f"nothing (curriculum.schedule: {cfg.curriculum.schedule})"
    ]
    called = called_endpoint(cfg.reward.kind, cfg.judge, cfg.critic)
    if called is None:
        return [*lines, f"judge.rule.name: pointwise reward = the rule's own 0-100 score ({cfg.judge.rule.name})"]
    derived = "" if cfg.critic is not None else " (none given: the judge's endpoint read as a critic)"
    lines.append(
        "critic: the pointwise critic scores each answer 1-10, reward = loss + (win - loss) * (score - 1) / 9" + derived
    )
    soft = critic_for(cfg.judge, cfg.critic).mode == "soft"  # soft: the score digit's log-probabilities
    return [*lines, check_endpoint(*called, local, probe, "completions" if soft else None)]


def launched_processes() -> int:
    """The process count `accelerate launch` / torchrun started this one in (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def check_concurrency_share(field: str, ep: EndpointConfig, num_processes: int) -> str:
    """`max_concurrency` is the endpoint's total over all training processes: each needs a share of one or more."""
    first, last = (ep.for_rank(rank, num_processes, field).max_concurrency for rank in (0, num_processes - 1))
    each = f"{first}" if first == last else f"{first} or {last}"  # the first ranks may get one more
    return f"{field}.max_concurrency: {ep.max_concurrency} in all over {num_processes} process(es), {each} each"


def check_critic(field: str, critic: Any, local: LocalJudgeSettings, probe: bool) -> str:
    logprobs = "completions" if critic.mode == "soft" else None  # soft: the score digit's log-probabilities
    return check_endpoint(f"{field}.endpoint", critic.endpoint, local, probe, logprobs)


def check_generator(field: str, gen: GeneratorConfig, local: LocalJudgeSettings, probe: bool) -> str:
    if gen.endpoint is not None:
        return check_endpoint(f"{field}.endpoint", gen.endpoint, local, probe)
    assert gen.transformers_model is not None  # the config validator guarantees one of the two
    return check_model(f"{field}.transformers_model", gen.transformers_model)


# -- files -------------------------------------------------------------------------------------------
def check_file(field: str, path: str, what: str | None = None) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        problem = "is a folder, not a file" if p.is_dir() else "no such file"
        raise CheckFailed(f"{field}: {path}: {problem}" + (f" ({what})" if what else ""))
    return p


# -- per command -------------------------------------------------------------------------------------
def check_train(cfg: Any, probe: bool = True, num_processes: int | None = None) -> list[str]:
    """`num_processes`: how many training processes the run will have (default: this launch's). Every step runs,
    whatever an earlier one found: all the problems are raised together (`Problems`)."""
    from .training.samples import load_train_samples

    n = num_processes or launched_processes()
    problems = Problems()
    lines: list[str] = []

    def step(check: Callable[..., str | list[str] | None], *args: Any) -> None:
        out = problems.run(check, *args)
        lines.extend([out] if isinstance(out, str) else out or [])

    grpo_line, args = checked_grpo(cfg, n, problems)  # records its problems, builds GRPOConfig from the rest
    if not problems:
        lines.append(grpo_line)
    samples = problems.run(load_train_samples, cfg)
    if samples is not None:
        if args is not None:
            step(check_round_size, cfg, samples, args, n)
        if cfg.judge.backend == "rule":
            step(check_rule_samples, "judge.rule.name", cfg.judge.rule.name, samples, dataset_label(cfg))
    if getattr(cfg, "ablation", None) is not None:
        step(check_heldout, cfg.ablation)
    step(check_model, "model", cfg.model)
    step(check_thinking, "model", cfg.model, cfg.reward)
    if called := called_endpoint(cfg.reward.kind, cfg.judge, cfg.critic):
        step(check_concurrency_share, *called, n)
    step(check_reward_endpoint, cfg, cfg.local_judge, probe)
    step(check_vllm_server, cfg, probe)
    problems.raise_if_any()
    return lines + cost_lines(cfg, samples, n)


def check_ablation(cfg: Any, probe: bool = True, num_processes: int | None = None) -> list[str]:
    """The base config as a training, then each arm's own training config (at the first seed): an arm may change
    the data, model, judge or reward the base check read, and a problem there would otherwise show only when that
    arm's turn comes, hours in. An arm's problems are named with it; of its lines, those the base did not print."""
    from .ablation import arm_train_config
    from .data import SampleFileError
    from .jsonl import JsonlFileError

    problems = Problems()
    lines = problems.run(check_train, cfg, probe, num_processes) or []
    said = {line for message in problems.messages for line in message.splitlines()}  # not repeated for each arm
    base, arms = cfg.model_dump(exclude={"ablation"}), cfg.ablation.arm_overrides()
    lines.append(f"ablation.arms: {', '.join(arms)}, each checked as its own training")
    for name, overrides in arms.items():
        # two levels: the static schedule's default milestones are a training's business, not the check's
        arm = arm_train_config(base, name, overrides, cfg.seeds()[0], cfg.output_dir, 2, cfg.ablation.static_milestones)
        try:
            arm_lines = check_train(arm, probe, num_processes)
        except CheckFailed as err:
            for message in str(err).splitlines():
                if message not in said:
                    problems.add(f"arm {name!r}: {message}")
        except (SampleFileError, JsonlFileError) as err:
            problems.add(f"arm {name!r}: {err}")
        else:
            lines += [f"arm {name}: {line}" for line in arm_lines if line not in lines]
    problems.raise_if_any()
    return lines


def cost_lines(
    cfg: Any, samples: Any = None, num_processes: int = 1, settings: Any = None, measured: Any = None
) -> list[str]:
    """The judge cost estimate (`writing_rl.cost`) and the budget, if one is set: what the run will spend, before
    it spends it. `measured`: tokens per call a judge audit measured (`MeasuredTokens`)."""
    from .cost import estimate_cost, estimate_verl_cost

    if settings is not None:
        lines = estimate_verl_cost(cfg, samples, measured, settings=settings).lines()
    else:
        lines = estimate_cost(cfg, samples, num_processes, measured).lines()
    if limits := cfg.judge.budget.limits:
        from .spend import format_limit

        shown = ", ".join(format_limit(k, v, cfg.judge.price) for k, v in limits.items())
        lines.append(f"judge budget: {shown} (training stops with a checkpoint at the step that reaches it)")
    return lines


def check_grpo(cfg: Any, num_processes: int = 1) -> str:
    """Every `grpo` key is a `trl.GRPOConfig` field, and `GRPOConfig` (built as for `num_processes` training
    processes) accepts the values; all the problems at once. On a host without a GPU (a login node) fp16 is
    checked as off (it needs a GPU); bf16 as set (it runs on a CPU too; a GPU without bf16 refuses it only there)."""
    return checked_grpo(cfg, num_processes)[0]


def checked_grpo(cfg: Any, num_processes: int = 1, problems: Problems | None = None) -> tuple[str, Any]:
    """`check_grpo`'s line and the `trl.GRPOConfig` the run would build on `num_processes` processes (None if
    it refuses). Every key is checked, then `GRPOConfig` is built from the rest, so its own checks run too. The
    problems go to `problems` where given (the caller raises them), else are raised here."""
    from dataclasses import fields
    from unittest import mock

    import torch
    from trl import GRPOConfig

    from .training.trl_inputs import grpo_args

    found = Problems() if problems is None else problems
    settings = cfg.grpo.model_dump()
    known = {f.name for f in fields(GRPOConfig)}
    bad = {key for key in cfg.grpo.model_extra or {} if key not in known}
    for key in sorted(bad):
        found.add(f"grpo.{key}: not a trl.GRPOConfig setting{did_you_mean(key, known)}")
    values = grpo_value_problems({k: v for k, v in settings.items() if k not in bad})
    for key, message in values.items():
        found.add(message)
        bad.add(key)
    if reporting := report_to_problems(cfg.grpo.report_to):
        for message in reporting:
            found.add(message)
        bad.add("report_to")
    # GRPOConfig's own checks on the rest: the keys found bad above left out (report_to: its default)
    rest = {k: v for k, v in settings.items() if k not in bad}
    note = ""
    # bf16 runs here too (autocast on the CPU, `grpo_args` sets use_cpu); fp16 mixed precision needs a GPU
    if rest.get("fp16") and not torch.cuda.is_available():
        rest["fp16"] = False
        note = " (fp16 left to the GPU host: this one has no GPU)"
    built = cfg.model_copy(update={"grpo": type(cfg.grpo).model_validate(rest)})
    args = None
    # TRL sizes the generation batch by the process count (GRPOConfig.__post_init__ reads `world_size`): give it
    # the run's. TRL's own defaults trip transformers' deprecation notices: not the user's.
    with mock.patch.object(GRPOConfig, "world_size", property(lambda _: num_processes)), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            args = grpo_args(built, Path(cfg.output_dir))
        except ConfigError as err:
            found.add(f"{err} (for {num_processes} training processes)" if num_processes > 1 else str(err))
    if problems is None:
        found.raise_if_any()
    return f"grpo: {len(settings)} settings accepted by trl.GRPOConfig{note}", args


def grpo_value_problems(settings: dict[str, Any]) -> dict[str, str]:
    """Values `trl.GRPOConfig` takes without a word but the run cannot use, by key: text where the field is a
    bool or a number (transformers' `HfArgumentParser`, which TRL's own command line uses, says whether and to
    what it converts; the run would pass the text as it is), and a value outside the field's choices (its
    `Literal`/enum type, as the parser reads it; for `vllm_mode`, the choices TRL declares in the field's help
    and checks only when the trainer starts, in `VLLMGeneration`)."""
    from typing import get_type_hints

    from transformers import HfArgumentParser
    from trl import GRPOConfig

    actions = {a.dest: a for a in HfArgumentParser(GRPOConfig)._actions}
    hints = get_type_hints(GRPOConfig)
    found = {}
    for key, value in settings.items():
        action = actions.get(key)
        if action is None or not isinstance(value, str):
            continue
        if not _takes_text(hints.get(key, Any)):
            found[key] = _text_problem(key, value, action, hints[key])
            continue
        choices = action.choices or (trl_declared_choices(key) if key in CHOICES_TRL_CHECKS_LATE else None)
        if choices and value not in choices:
            shown = ", ".join(map(str, choices))
            found[key] = f"grpo.{key}: {value!r} is not one of {shown}{did_you_mean(value, list(choices))}"
    return found


CHOICES_TRL_CHECKS_LATE = ("vllm_mode",)  # plain `str` fields whose choices TRL enforces only in the trainer


def trl_declared_choices(key: str) -> list[str]:
    """The values a `trl.GRPOConfig` field's help declares: "Must be one of `'server'` or `'colocate'`"."""
    import re
    from dataclasses import fields

    from trl import GRPOConfig

    text = next((str(f.metadata.get("help", "")) for f in fields(GRPOConfig) if f.name == key), "")
    listed = re.search(r"[Mm]ust be one of ([^.]*)", text)
    return re.findall(r"`'?([\w-]+)'?`", listed.group(1)) if listed else []


def _takes_text(annotation: Any) -> bool:
    """Whether a dataclass field of this type holds text: `str`, a union with `str`, a `Literal` or an enum."""
    import types
    from enum import Enum
    from typing import Union, get_args, get_origin

    if annotation is Any or annotation is str:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return True
    if origin is Union or origin is types.UnionType:
        return any(_takes_text(a) for a in get_args(annotation) if a is not type(None))
    return isinstance(annotation, type) and issubclass(annotation, Enum)


def _text_problem(key: str, value: str, action: Any, annotation: Any) -> str:
    import yaml

    name = " or ".join(getattr(a, "__name__", str(a)) for a in _non_none(annotation))
    try:
        converted = action.type(value)  # transformers' conversion: string_to_bool for a bool, int, float
    except Exception as err:
        return f"grpo.{key}: {value!r} is not a {name} ({one_line(str(err), 140)})"
    if action.nargs == "+":
        return f"grpo.{key}: {value!r} is text, not a list: write [{value}]"
    written = yaml.safe_dump(converted).split("\n")[0]
    note = " (YAML reads 1e-6 as text, 1.0e-6 as a number)" if isinstance(converted, float) else ""
    return (
        f"grpo.{key}: {value!r} is text, which trl.GRPOConfig would keep as text, not a {name}: write {written} "
        f"without quotes{note}"
    )


def _non_none(annotation: Any) -> list[Any]:
    from typing import get_args

    return [a for a in get_args(annotation) if a is not type(None)] or [annotation]


def report_to_problems(names: list[str]) -> list[str]:
    """`grpo.report_to` against transformers' reporting integrations, with transformers' own code: a name it does
    not know (`get_reporting_integration_callbacks` refuses it; the closest known one is named), and a known one
    whose package is not installed here (not among `get_available_reporting_integrations`; the pip line is the
    one its callback gives)."""
    from transformers.integrations import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
        get_reporting_integration_callbacks,
    )

    if not names or names in (["none"], ["all"]):
        return []
    available = set(get_available_reporting_integrations())
    found = []
    for name in names:
        if name in ("none", "all"):
            found.append(f"grpo.report_to: {name!r} goes alone (report_to: [{name}]), not with other integrations")
            continue
        try:
            (callback,) = get_reporting_integration_callbacks([name])
        except ValueError:
            known = list(INTEGRATION_TO_CALLBACK)
            found.append(
                f"grpo.report_to: {name!r} is not a transformers reporting integration"
                f"{did_you_mean(name, [*known, 'none', 'all'])} (known: {', '.join(known)}; none: no reporting)"
            )
            continue
        if name not in available and (missing := _missing_integration(callback)):
            found.append(f"grpo.report_to: {name} is not installed here: {missing}, or drop it from report_to")
    return found


def _missing_integration(callback: Any) -> str | None:
    """Why a reporting callback cannot start here, in transformers' words (its pip line where it gives one)."""
    import re

    try:
        callback()
    except Exception as err:
        pip = re.search(r"pip install [^`]+", str(err))
        return f"`{pip.group(0).rstrip('. ')}`" if pip else one_line(str(err), 160)
    return None


def dataset_label(cfg: Any) -> str:
    from .training.config import DEMO_DATASET

    return "the embedded demo" if cfg.dataset == DEMO_DATASET else cfg.dataset


def check_round_size(cfg: Any, samples: list[Any], args: Any, num_processes: int) -> str:
    """TRL's sampler (`RepeatSampler`) hands out the prompts in generation rounds of `generation_batch_size /
    num_generations` distinct prompts and drops an incomplete round: a dataset smaller than one round gives no
    step at all (TRL stops at step 0 and saves an untrained final/). `args`: the `GRPOConfig` built for the run's
    process count, which sizes the round (`per_device_train_batch_size x processes x steps_per_generation`)."""
    per_round = args.generation_batch_size // args.num_generations
    extra = cfg.grpo.model_extra or {}
    if extra.get("generation_batch_size") is not None:
        how = f"grpo.generation_batch_size {args.generation_batch_size} / grpo.num_generations {args.num_generations}"
        lower = "grpo.generation_batch_size"
    else:
        steps = (
            "steps_per_generation" if extra.get("steps_per_generation") is not None else "gradient_accumulation_steps"
        )
        how = (
            f"grpo.per_device_train_batch_size {args.per_device_train_batch_size} x {num_processes} process(es) x "
            f"grpo.{steps} {args.steps_per_generation} / grpo.num_generations {args.num_generations}"
        )
        lower = f"grpo.per_device_train_batch_size or grpo.{steps}"
    if len(samples) < per_round:
        raise CheckFailed(
            f"dataset: {dataset_label(cfg)}: {len(samples)} samples, fewer than the {per_round} prompts one "
            f"generation round takes ({how}): TRL would stop at step 0 and save an untrained final/; add samples or "
            f"lower {lower}"
        )
    return f"dataset: {dataset_label(cfg)}: {len(samples)} samples, {per_round} prompts a generation round ({how})"


def rule_misses(rule: str, samples: list[Any]) -> tuple[int, str]:
    """How many samples the rule cannot score, and the rule's own reason (`RuleNotApplicable`): each sample is
    scored as the judge scores it, on an empty answer."""
    from .judge.rules import RULES, RuleNotApplicable

    missing, why = 0, ""
    for sample in samples:
        try:
            RULES[rule]("", sample)
        except RuleNotApplicable as err:
            missing, why = missing + 1, str(err)
    return missing, why


def check_rule_samples(field: str, rule: str, samples: list[Any], source: str) -> str:
    """A rule judge gives an unknown reward (not_applicable) for a sample that lacks what its rule measures."""
    from .judge.rules import RULES

    missing, why = rule_misses(rule, samples)
    if samples and missing == len(samples):
        fits = [name for name in RULES if rule_misses(name, samples[:1])[0] == 0]
        raise CheckFailed(
            f"{field}: {why}, and none of the {len(samples)} samples of {source} has it: every reward would be "
            f"unknown (not_applicable); add it to the samples or choose a rule they fit ({', '.join(fits)})"
        )
    if missing:
        return (
            f"{field}: {rule} scores {len(samples) - missing} of {len(samples)} samples; {missing} lack what it "
            f"needs ({why}): their rewards are unknown"
        )
    return f"{field}: {rule} scores all {len(samples)} samples"


def check_heldout(ablation: Any) -> str:
    """The ablation's held-out samples: every rule metric must score every one of them (the scores are averaged);
    the text measures (`uncounted_words`, `base_nll`) read any answer."""
    from .data import load_samples
    from .eval.text_measures import MEASURES

    check_file("ablation.heldout", ablation.heldout, "JSONL of held-out samples")
    heldout = load_samples(ablation.heldout)
    for metric in ablation.metrics or []:
        if metric in MEASURES:
            continue
        missing, why = rule_misses(metric, heldout)
        if missing:
            raise CheckFailed(
                f"ablation.metrics: {why}, and {missing} of the {len(heldout)} held-out samples of "
                f"{ablation.heldout} lack it: add it to them or drop {metric} from ablation.metrics"
            )
    return (
        f"ablation.heldout: {ablation.heldout}: {len(heldout)} samples, scored by {', '.join(ablation.metrics or [])}"
    )


def _trl_setting(cfg: Any, key: str) -> Any:
    """A `grpo` value as the run's `GRPOConfig` will hold it: the config's, else `GRPOConfig`'s default."""
    from dataclasses import fields

    from trl import GRPOConfig

    extra = cfg.grpo.model_extra or {}
    return extra[key] if key in extra else next(f.default for f in fields(GRPOConfig) if f.name == key)


def check_vllm_server(cfg: Any, probe: bool) -> str | None:
    """TRL's vLLM server for the policy (`use_vllm: true`, `vllm_mode: server`), at the URL TRL's `VLLMClient`
    builds from the settings; None when the run uses none."""
    from urllib.parse import urlparse

    if _trl_setting(cfg, "use_vllm") is not True or _trl_setting(cfg, "vllm_mode") != "server":
        return None
    if base_url := _trl_setting(cfg, "vllm_server_base_url"):
        field = "grpo.vllm_server_base_url"
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CheckFailed(f"{field}: {base_url!r} is not an http(s) URL (for example http://127.0.0.1:8001)")
        url = f"{parsed.scheme}://{parsed.netloc}{parsed.path}"
    else:
        field = "grpo.vllm_server_host/vllm_server_port"
        url = f"http://{_trl_setting(cfg, 'vllm_server_host')}:{_trl_setting(cfg, 'vllm_server_port')}"
    if not probe:
        return f"{field}: {url} (TRL's vLLM server; not contacted: --skip-endpoints)"
    return probe_vllm_server(field, url, cfg.model)


def probe_vllm_server(field: str, url: str, model: str, timeout_s: float = 10.0) -> str:
    """What TRL's `VLLMClient` asks of the server before the first step (trl/generation/vllm_client.py):
    `/health`, `/v1/models`, `/server_info` (vLLM's development endpoints, with a weight-transfer engine: what
    `trl vllm-serve` starts) and `/get_world_size`."""
    base = url.rstrip("/")
    port = httpx.URL(base).port or (443 if base.startswith("https") else 80)
    start = f"start it (`trl vllm-serve --model {model} --port {port}`, on a GPU of its own) or fix {field}"

    def get(http: httpx.Client, path: str, **params: str) -> httpx.Response:
        try:
            return http.get(f"{base}{path}", params=params)
        except httpx.TimeoutException:
            raise CheckFailed(
                f"{field}: {base}{path} did not answer in {timeout_s:g} s: if the server is still loading its model, "
                f"check again once it answers; else {start}"
            ) from None
        except httpx.HTTPError as err:
            raise CheckFailed(
                f"{field}: cannot reach TRL's vLLM server at {url} ({type(err).__name__}: {one_line(str(err), 120)}); "
                + start
            ) from None

    def failed(resp: httpx.Response) -> CheckFailed:
        return CheckFailed(
            f"{field}: {resp.request.url} answered HTTP {resp.status_code}: {one_line(resp.text, 120)} (not TRL's vLLM "
            f"server?); {start}"
        )

    with httpx.Client(timeout=timeout_s) as http:
        if (health := get(http, "/health")).status_code != 200:
            raise failed(health)
        info = get(http, "/server_info", config_format="json")
        if info.status_code == 404:
            raise CheckFailed(
                f"{field}: {url} is a vLLM server without the development endpoints TRL sends the policy's weights "
                "through: serve it with `trl vllm-serve` (or `VLLM_SERVER_DEV_MODE=1 vllm serve ...`)"
            )
        if info.status_code != 200:
            raise failed(info)
        if (_json(info).get("vllm_config") or {}).get("weight_transfer_config") is None:
            raise CheckFailed(
                f"{field}: {url} has no weight-transfer engine, which TRL sends the policy's weights through: serve "
                """it with `trl vllm-serve` (or `vllm serve ... --weight-transfer-config '{"backend": "nccl"}'`)"""
            )
        if (size := get(http, "/get_world_size")).status_code != 200:
            raise failed(size)
        if (listed := get(http, "/v1/models")).status_code != 200:
            raise failed(listed)
    served = ", ".join(ModelListing.read(listed.status_code, listed.content).ids) or "no model listed"
    return f"{field}: {url} answers as TRL's vLLM server ({served}; {_json(size).get('world_size')} worker(s))"


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def accelerate_processes(path: str | Path) -> int:
    """The `num_processes` of an accelerate config file, read with accelerate's own loader (as `accelerate launch
    --config_file FILE` reads it; a `--num_processes` given to the launch overrides it)."""
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        config = load_config_from_file(str(path))
    except FileNotFoundError:
        raise CheckFailed(f"--accelerate-config: {path}: no such file") from None
    except Exception as err:
        raise CheckFailed(
            f"--accelerate-config: {path}: accelerate cannot read it ({type(err).__name__}: {one_line(str(err), 120)})"
        ) from None
    count = getattr(config, "num_processes", None)
    if not isinstance(count, int) or count < 1:
        raise CheckFailed(
            f"--accelerate-config: {path}: num_processes is {count!r}, not a process count: set it there, or give "
            "--num-processes N"
        )
    return count


def check_build_refs(cfg: Any, probe: bool = True) -> list[str]:
    from .prompts import load_prompts

    check_file("prompts", cfg.prompts, "JSONL of prompts")
    lines = [f"prompts: {cfg.prompts}: {len(load_prompts(cfg.prompts))} prompts"]
    for i, gen in enumerate(cfg.generators):
        lines.append(check_generator(f"generators.{i} ({gen.name})", gen, cfg.local_judge, probe))
    return lines


def check_select(cfg: Any, probe: bool = True) -> list[str]:
    from .jsonl import read_jsonl

    check_file("pool", cfg.pool, "the pool written by build-refs")
    lines = [f"pool: {cfg.pool}: {len(read_jsonl(cfg.pool))} prompts"]
    lines.append(check_generator("policy", cfg.policy, cfg.local_judge, probe))
    if cfg.rule_critic:  # no critic is called
        lines.append(f"rule_critic: {cfg.rule_critic} (known-truth scores; `critic` is not used)")
    else:
        lines.append(check_critic("critic", cfg.critic, cfg.local_judge, probe))
    return lines


def check_task_file(field: str, task: str, path: str, limit: int | None = None) -> list[Any]:
    """The rows of an eval task's file (the first `limit`, as the run reads them), each with the fields the task
    reads; a file of another kind is named as such (`eval.task_files`)."""
    from .eval.task_files import task_file_problem
    from .jsonl import JsonlFileError, LineProblem, jsonl_rows

    check_file(field, path)
    rows = []
    for line, row in jsonl_rows(path):
        if isinstance(row, LineProblem):
            raise JsonlFileError(path, line, str(row))
        rows.append((line, row))
    if not rows:
        raise CheckFailed(f"{field}: {path}: the file holds no records")
    if problem := task_file_problem(task, rows[:limit]):
        raise CheckFailed(f"{field}: {path}: {problem}")
    return [row for _, row in rows[:limit]]


def _requirement_lines(task: Any) -> list[str]:
    """The requirement folder the WritingBench task will read, read now: a wrong path or file stops the check."""
    from .eval.requirements import load_requirements

    try:
        folder = task.requirement_folder()
        found = load_requirements(folder) if folder is not None else {}
    except ValueError as err:
        raise CheckFailed(f"tasks.writingbench: {err}") from err
    if folder is None:
        return []
    held = ", ".join(found) or "none of style, format, length"
    return [f"tasks.writingbench: requirement scores from {folder}: {held}"]


def check_eval(cfg: Any, probe: bool = True) -> list[str]:
    from .data import load_jsonl
    from .jsonl import read_jsonl
    from .prompts import load_prompts

    tasks = cfg.tasks
    lines = []
    for name in ("writingbench", "longbench_write", "longbench_v2"):
        task = getattr(tasks, name)
        for path in task.paths if task is not None else []:
            rows = check_task_file(f"tasks.{name}.path", name, path, task.limit)
            note = ""
            if name == "writingbench":  # read as the run reads it: every line, ids unique
                records = load_prompts(path)[: task.limit]
                if not any(r.criteria for r in records):
                    note = " (none with criteria: the critic scores them on its generic rubric)"
            lines.append(f"tasks.{name}: {path}: {len(rows)} items{note}")
    if tasks.writingbench is not None:
        lines += _requirement_lines(tasks.writingbench)
    if tasks.arena is not None:
        check_task_file("tasks.arena.samples", "arena", tasks.arena.samples, tasks.arena.limit)
        lines.append(f"tasks.arena: {tasks.arena.samples}: {len(load_jsonl(tasks.arena.samples))} samples")
        for name, folder in tasks.arena.opponents.items():
            if not Path(folder).is_dir():
                raise CheckFailed(
                    f"tasks.arena.opponents.{name}: {folder}: no such folder (give an earlier eval's output_dir)"
                )
            answers = check_file(
                f"tasks.arena.opponents.{name}", str(Path(folder) / "generations.jsonl"), "an earlier eval's answers"
            )
            held = {r.get("task") for r in read_jsonl(answers) if isinstance(r, dict)}
            if "arena" not in held:
                what = f"answers for {', '.join(sorted(map(str, held)))} only" if held else "no answers"
                raise CheckFailed(
                    f"tasks.arena.opponents.{name}: {answers} holds {what}, none for the arena: evaluate that "
                    "model with the arena task first, or remove the opponent"
                )
            lines.append(f"tasks.arena.opponents.{name}: {folder}")
    if tasks.creative_writing_v3 is not None:
        lines.append(check_creative_writing(tasks.creative_writing_v3))
    if not any(getattr(tasks, n) is not None for n in type(tasks).model_fields):
        raise CheckFailed(
            "tasks: no task given (writingbench, longbench_write, arena, longbench_v2 or creative_writing_v3)"
        )
    lines.append(check_generator("model", cfg.model, cfg.local_judge, probe))
    if any(t is not None for t in (tasks.writingbench, tasks.longbench_write, tasks.creative_writing_v3)):
        lines.append(check_critic("critic", cfg.critic, cfg.local_judge, probe))
    if tasks.arena is not None:
        lines.append(check_judge("judge", cfg.judge, cfg.local_judge, probe))
    return lines


def check_creative_writing(task: Any) -> str:
    """The official files of the user's clone, read and checked as the run reads them."""
    from .eval import creative_writing as cw

    try:
        bench = cw.load_benchmark(task.repo)
        pieces = cw.items(bench.prompts[: task.limit], task.iterations)
    except cw.BenchmarkFilesError as err:
        raise CheckFailed(str(err)) from err
    prompts = len(bench.prompts[: task.limit])
    return f"tasks.creative_writing_v3: {task.repo}: {prompts} prompts x {task.iterations} iterations = {len(pieces)} pieces"


def check_verl(cfg: Any, probe: bool = True) -> list[str]:
    """verl's own config validation (needs the verl environment), the model, the parquet files, the judge."""
    from omegaconf import OmegaConf

    from .verl.launch import compose, key_variables, missing_variables, model_paths, train_rows

    config = compose(cfg, Path(cfg.output_dir).resolve())  # checks the model paths before verl reads them
    lines = [f"verl: composed and accepted by verl's validate_config ({config.algorithm.adv_estimator})"]
    for key in ("train_files", "val_files"):
        files = config.data[key]
        for path in [files] if isinstance(files, str) else files:
            check_file(f"verl.data.{key}", path, "parquet from `writing-rl export-verl`")
            lines.append(f"verl.data.{key}: {path}")
    train = [config.data.train_files] if isinstance(config.data.train_files, str) else list(config.data.train_files)
    try:
        rows = train_rows(train)
    except Exception as err:  # pyarrow's ArrowInvalid and OSError: not a parquet file
        raise CheckFailed(
            f"verl.data.train_files: {', '.join(train)}: not readable as parquet ({one_line(str(err), 100)}): "
            "write it with `writing-rl export-verl`"
        ) from None
    used = min(rows, config.data.train_max_samples) if config.data.get("train_max_samples", -1) > 0 else rows
    batch = config.data.train_batch_size
    if batch > used:
        cut = f" (train_max_samples: {config.data.train_max_samples})" if used < rows else ""
        raise CheckFailed(
            f"verl.data.train_batch_size: {batch} prompts per step, but the training data has {used} rows{cut} "
            f"({', '.join(train)}): verl drops an incomplete batch, so not one step would run: lower "
            "train_batch_size or export more samples"
        )
    steps = used // batch
    lines.append(
        f"verl.data: {used} training rows, {steps} step{'s' if steps > 1 else ''} of {batch} prompts per epoch"
    )
    lines += model_paths(config)
    policy = "actor_rollout_ref.model.path"
    if thinking := check_thinking(f"verl.{policy}", str(OmegaConf.select(config, policy)), cfg.reward):
        lines.append(thinking)
    if probe:
        key_variables(cfg)
    else:  # nothing is contacted: the key is not needed yet
        lines += [
            f"note: {m}: not needed for --skip-endpoints; export it before train-verl" for m in missing_variables(cfg)
        ]
    lines += check_reward_endpoint(cfg, None, probe)
    from .cost import VERL_DEFAULTS

    settings = {key: OmegaConf.select(config, key, default=None) for key in VERL_DEFAULTS}
    return lines + cost_lines(cfg, settings=settings)


CHECKS = {
    "train": check_train,
    "ablation": check_ablation,
    "build-refs": check_build_refs,
    "select": check_select,
    "eval": check_eval,
    "verl": check_verl,
}


def preflight(kind: ConfigKind, cfg: BaseModel, probe: bool = True, num_processes: int | None = None) -> list[str]:
    """What was checked, one line each; raises `CheckFailed` (or the data loaders' errors) on a problem (for a
    train or ablation config, on all it found: one line each).
    `num_processes`: training processes to check the endpoint shares for (default: this launch's)."""
    if kind == "train":
        return check_train(cfg, probe, num_processes)
    if kind == "ablation":
        return check_ablation(cfg, probe, num_processes)
    return CHECKS[kind](cfg, probe)
