"""`writing-rl check`: everything a run needs, checked before the run creates anything.

`train`, `select`, `build-refs` and `eval` run the same checks first (unless `--skip-check`): the config
(including the keys and values `trl.GRPOConfig` accepts), every input file, every model, and every
endpoint the run will call (reachable, API key present, answers one tiny request; a soft judge must
return log-probabilities). A failure is a `CheckFailed`: one line naming the field, path or URL and
what to do about it. Data files are read with the loaders the run uses, so a bad line is reported
exactly as the run would report it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from .config import ConfigError, LocalJudgeSettings, did_you_mean
from .endpoint import EndpointConfig
from .generation import GeneratorConfig
from .judge import JudgeConfig

ConfigKind = Literal["train", "ablation", "build-refs", "select", "eval", "verl"]


class CheckFailed(ConfigError):
    """A pre-flight check failed; the message is one line saying what and where."""


def one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def config_kind(data: dict[str, Any]) -> ConfigKind:
    """Which command a config file is for, from the keys only that command takes."""
    if "generators" in data:
        return "build-refs"
    if "policy" in data or "pool" in data:
        return "select"
    if "tasks" in data:
        return "eval"
    if "verl" in data:
        return "verl"
    return "ablation" if "ablation" in data else "train"


def config_model(kind: str) -> type[BaseModel]:
    """The schema of a config for `kind` (what `config_kind` returns)."""
    from .ablation import AblationConfig
    from .eval.runner import EvalConfig
    from .selection import BuildRefsConfig, SelectConfig
    from .train import TrainConfig
    from .verl.launch import VerlRecipe

    models = {"train": TrainConfig, "ablation": AblationConfig, "build-refs": BuildRefsConfig}
    return {**models, "select": SelectConfig, "eval": EvalConfig, "verl": VerlRecipe}[kind]


# -- models ------------------------------------------------------------------------------------------
def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or name.endswith("/")


def check_model(field: str, name: str) -> str:
    """A local model folder must hold a transformers model; a hub name is looked up in the local cache."""
    from .models import EMBEDDED_MODEL

    if name == EMBEDDED_MODEL:
        check_embedded(field)
        return f"{field}: {name} (the embedded SmolLM2, converted on first use)"
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise CheckFailed(
                f"{field}: {name} has no config.json: give a folder saved by transformers (a run's final/ or "
                "checkpoint-N/) or a hub name"
            )
        return f"{field}: {name} (local folder)"
    if _looks_like_path(name):
        raise CheckFailed(
            f"{field}: {name}: no such folder (give a model folder, a hub name like Org/Model, or {EMBEDDED_MODEL})"
        )
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except HFValidationError as err:
        raise CheckFailed(f"{field}: {name}: no such folder, and not a hub name ({one_line(str(err), 120)})") from None
    if isinstance(cached, str):
        return f"{field}: {name} (in the Hugging Face cache)"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise CheckFailed(
            f"{field}: {name} is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE is set"
        )
    return f"{field}: {name} (not here: transformers will download it from the Hugging Face hub)"


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
    when `logprobs` names the route a soft judge reads them from). `local_judge`: see `start_hint`."""
    headers = {}
    if ep.api_key_env:
        key = os.environ.get(ep.api_key_env)
        if not key:
            raise CheckFailed(
                f"{field}.api_key_env: environment variable {ep.api_key_env} is not set: export the API key for "
                f"{ep.base_url} in it, or remove api_key_env for a server without keys"
            )
        headers["Authorization"] = f"Bearer {key}"
    if not ep.base_url.startswith(("http://", "https://")):
        raise CheckFailed(
            f"{field}.base_url: {ep.base_url!r} is not an http(s) URL (for example http://127.0.0.1:8000/v1)"
        )
    base = ep.base_url.rstrip("/")
    with httpx.Client(headers=headers, timeout=min(ep.timeout_s, 30.0)) as http:
        try:
            listed = http.get(f"{base}/models")
        except httpx.HTTPError as err:
            raise CheckFailed(
                f"{field}: cannot reach {ep.base_url} ({type(err).__name__}: {one_line(str(err), 120)}); "
                + start_hint(ep.base_url, local_judge)
            ) from None
        if listed.status_code in (401, 403):
            fix = f"check the key in {ep.api_key_env}" if ep.api_key_env else "it wants a key: set api_key_env"
            raise CheckFailed(f"{field}: {ep.base_url} refused the request (HTTP {listed.status_code}): {fix}")
        served = _served_models(listed)
        path = "completions" if logprobs == "completions" else "chat/completions"
        payload: dict[str, Any] = {"model": ep.model, **ep.extra_body, "max_tokens": 1, "temperature": 0.0}
        if logprobs == "completions":
            payload.update(prompt="Say OK.", logprobs=top_logprobs)
        else:
            payload["messages"] = [{"role": "user", "content": "Say OK."}]
            if logprobs == "chat":
                payload.update(logprobs=True, top_logprobs=top_logprobs)
        try:
            resp = http.post(f"{base}/{path}", json=payload)
        except httpx.HTTPError as err:
            raise CheckFailed(
                f"{field}: {base}/{path} did not answer a one-token request ({type(err).__name__}: "
                f"{one_line(str(err), 120)})"
            ) from None
    serves_other = served and ep.model not in served
    if resp.status_code >= 400:
        which = f"; it serves {', '.join(served)}, not {ep.model!r}: fix {field}.model" if serves_other else ""
        raise CheckFailed(f"{field}: {base}/{path} answered HTTP {resp.status_code}: {one_line(resp.text, 160)}{which}")
    choice = _first_choice(resp)
    if choice is None:
        raise CheckFailed(f"{field}: {base}/{path} answered without choices: {one_line(resp.text, 160)}")
    if logprobs and not _has_logprobs(choice, logprobs):
        raise CheckFailed(
            f"{field}: {base}/{path} returned no log-probabilities, which soft mode reads: enable them on the "
            "server, or use the written verdict (mode: hard for a judge, json for a critic)"
        )
    note = f" (it lists {', '.join(served)}, yet answered for {ep.model!r})" if serves_other else ""
    return f"{field}: {ep.base_url} answers model {ep.model!r}{' with log-probabilities' if logprobs else ''}{note}"


def _served_models(resp: httpx.Response) -> list[str]:
    try:
        entries = resp.json().get("data") or [] if resp.status_code == 200 else []
    except (ValueError, AttributeError):
        return []
    return [str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e]


def _first_choice(resp: httpx.Response) -> dict[str, Any] | None:
    try:
        choices = resp.json().get("choices")
    except (ValueError, AttributeError):
        return None
    return choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None


def _has_logprobs(choice: dict[str, Any], route: str) -> bool:
    lp = choice.get("logprobs") or {}
    if route == "completions":
        return bool(lp.get("top_logprobs"))
    return any(item.get("top_logprobs") for item in lp.get("content") or [] if isinstance(item, dict))


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
    """`num_processes`: how many training processes the run will have (default: this launch's)."""
    from .train import DEMO_DATASET, load_train_samples

    lines = [check_grpo(cfg)]
    samples = load_train_samples(cfg)
    per_step = cfg.grpo.per_device_train_batch_size // cfg.grpo.num_generations
    if len(samples) < per_step:  # TRL would stop at step 0 and save an untrained "final" model
        raise CheckFailed(
            f"dataset: {cfg.dataset}: {len(samples)} samples, fewer than the {per_step} prompts one step takes "
            "(grpo.per_device_train_batch_size / grpo.num_generations): add samples or lower the batch size"
        )
    lines.append(
        f"dataset: {'the embedded demo' if cfg.dataset == DEMO_DATASET else cfg.dataset}: {len(samples)} samples"
    )
    lines.append(check_model("model", cfg.model))
    if cfg.judge.backend == "llm":
        lines.append(
            check_concurrency_share("judge.endpoint", cfg.judge.endpoint, num_processes or launched_processes())
        )
    lines.append(check_judge("judge", cfg.judge, cfg.local_judge, probe))
    return lines + cost_lines(cfg, samples, num_processes or launched_processes())


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


def check_grpo(cfg: Any) -> str:
    """Every `grpo` key is a `trl.GRPOConfig` field, and `GRPOConfig` accepts the values. On a host without
    a GPU (a login node) bf16/fp16 are checked as off: transformers refuses them there, not on the GPU host."""
    from dataclasses import fields

    import torch
    from trl import GRPOConfig

    from .train import grpo_args

    known = {f.name for f in fields(GRPOConfig)}
    for key in cfg.grpo.model_extra or {}:
        if key not in known:
            raise CheckFailed(f"grpo.{key}: not a trl.GRPOConfig setting{did_you_mean(key, known)}")
    half = [k for k in ("bf16", "fp16") if (cfg.grpo.model_extra or {}).get(k)]
    note = ""
    if half and not torch.cuda.is_available():
        cfg = cfg.model_copy(update={"grpo": cfg.grpo.model_copy(update=dict.fromkeys(half, False))})
        note = f" ({'/'.join(half)} left to the GPU host: this one has no GPU)"
    with warnings.catch_warnings():  # TRL's own defaults trip transformers' deprecation notices: not the user's
        warnings.simplefilter("ignore", FutureWarning)
        grpo_args(cfg, Path(cfg.output_dir))
    return f"grpo: {len(cfg.grpo.model_dump())} settings accepted by trl.GRPOConfig{note}"


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
    if not any(getattr(tasks, n) is not None for n in type(tasks).model_fields):
        raise CheckFailed("tasks: no task given (writingbench, longbench_write, arena or longbench_v2)")
    lines.append(check_generator("model", cfg.model, cfg.local_judge, probe))
    if tasks.writingbench is not None or tasks.longbench_write is not None:
        lines.append(check_critic("critic", cfg.critic, cfg.local_judge, probe))
    if tasks.arena is not None:
        lines.append(check_judge("judge", cfg.judge, cfg.local_judge, probe))
    return lines


def check_verl(cfg: Any, probe: bool = True) -> list[str]:
    """verl's own config validation (needs the verl environment), the model, the parquet files, the judge."""
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
    if probe:
        key_variables(cfg)
    else:  # nothing is contacted: the key is not needed yet
        lines += [
            f"note: {m}: not needed for --skip-endpoints; export it before train-verl" for m in missing_variables(cfg)
        ]
    lines.append(check_judge("judge", cfg.judge, None, probe))
    from omegaconf import OmegaConf

    from .cost import VERL_DEFAULTS

    settings = {key: OmegaConf.select(config, key, default=None) for key in VERL_DEFAULTS}
    return lines + cost_lines(cfg, settings=settings)


CHECKS = {
    "train": check_train,
    "ablation": check_train,
    "build-refs": check_build_refs,
    "select": check_select,
    "eval": check_eval,
    "verl": check_verl,
}


def preflight(kind: ConfigKind, cfg: BaseModel, probe: bool = True, num_processes: int | None = None) -> list[str]:
    """What was checked, one line each; raises `CheckFailed` (or the data loaders' errors) on the first problem.
    `num_processes`: training processes to check the endpoint shares for (default: this launch's)."""
    if kind in ("train", "ablation"):
        return check_train(cfg, probe, num_processes)
    return CHECKS[kind](cfg, probe)
