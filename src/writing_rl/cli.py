"""The `writing-rl` command."""

from __future__ import annotations

import json
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from pydantic import BaseModel

from . import run_layout
from .config import ConfigError, CoreConfig, load_config, read_yaml
from .data import SampleFileError
from .jsonl import JsonlFileError
from .reasons import Reason

if TYPE_CHECKING:
    from .audit import AuditResult
    from .judge import JudgeConfig

# no locals in tracebacks (--debug): a request's headers may hold an API key
app = typer.Typer(
    help="Writing-RL: RL for long-form writing with a pairwise judge reward.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
TrainConfigT = TypeVar("TrainConfigT", bound=BaseModel)
curriculum_app = typer.Typer(help="Inspect reference-curriculum state.", no_args_is_help=True)
app.add_typer(curriculum_app, name="curriculum")


_debug = False


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="show the full traceback of an unexpected error"),
) -> None:
    global _debug
    _debug = debug


def _fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@contextmanager
def user_errors(prefix: str = "", before_exit: Callable[[Exception], None] | None = None) -> Iterator[None]:
    """The one place an expected failure becomes one line and its exit status. Each of our error classes says
    its own (`exit_code`: 2 a config, option or file to fix; 1 unreadable data or a failed run; 3 the judge
    budget reached; 75 preempted). Anything else is a bug and goes on to `main`, which names it."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as err:
        code = getattr(type(err), "exit_code", None)
        if not (isinstance(code, int) and type(err).__module__.startswith("writing_rl.")):
            raise
        if before_exit is not None:
            before_exit(err)
        _fail(f"{prefix}{err}", code)


SKIP_CHECK = typer.Option(False, "--skip-check", help="start without the pre-flight check (air-gapped starts)")


def _preflight(kind: str, cfg: BaseModel, skip: bool) -> None:
    """Run `writing-rl check` on the config; print what was checked, or exit (2) with the one-line reason."""
    if skip:
        return
    _echo_checked(_checks(kind, cfg))


def _checks(kind: str, cfg: BaseModel, probe: bool = True, num_processes: int | None = None) -> list[str]:
    """The pre-flight check's lines, then one `warn:` line per misspelt field in the sample files it read (a
    `SampleFieldWarning`); those are silenced for the rest of the command, as the run reads the same files."""
    from .data import SampleFieldWarning
    from .preflight import preflight

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SampleFieldWarning)
        lines = preflight(kind, cfg, probe=probe, num_processes=num_processes)  # type: ignore[arg-type]
    for w in caught:
        if issubclass(w.category, SampleFieldWarning):
            lines.append(f"warn: {w.message}")
        else:  # someone else's: shown as it would have been
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    warnings.filterwarnings("ignore", category=SampleFieldWarning)
    return lines


def _echo_checked(lines: list[str]) -> None:
    """`  ok  ...` per check; a line the check marks `note:` or `warn:` (passed, but read it) under that tag."""
    for line in lines:
        tag, _, text = line.partition(": ") if line.startswith(("note: ", "warn: ")) else ("ok", "", line)
        typer.echo(f"  {tag}  {text}")


# A sample or prompt file with a line that cannot be read (bad bytes, bad JSON, bad fields): exit 1,
# naming the file and the line, as `validate` does.
DATA_ERRORS = (SampleFileError, JsonlFileError)


@app.command()
def validate(path: Annotated[Path, typer.Argument(help="JSONL file of samples")]) -> None:
    """Check a sample file; print the count, or every bad line and exit 1."""
    from .data import validate_jsonl

    if path.suffix in (".yaml", ".yml"):
        _fail(f"{path} is a config, not a sample file: check it with `writing-rl check {path}`", 2)
    try:
        report = validate_jsonl(path)
    except FileNotFoundError as err:
        _fail(str(err), 2)
    for err in report.errors:
        typer.echo(f"{path}:{err.line}: {err.message}", err=True)
    for warning in report.warnings:  # a misspelt optional field: the sample is valid, the field is not read
        typer.echo(f"warning: {path}: {warning}", err=True)
    if report.ok:
        warned = f" ({len(report.warnings)} warning(s) above)" if report.warnings else ""
        typer.echo(f"{len(report.samples)} samples OK{warned}")
        return
    _fail(f"{len(report.errors)} bad line(s), {len(report.samples)} good", 1)


@app.command("check")
def check_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config for train, build-refs, select or eval")],
    kind: str | None = typer.Option(
        None, help="train, ablation, build-refs, select, eval or verl; default: read from the keys"
    ),
    skip_endpoints: bool = typer.Option(False, help="check config, files and models, but contact no server"),
    num_processes: int | None = typer.Option(
        None,
        min=1,
        help="training processes the run will launch (default: --accelerate-config's, else $WORLD_SIZE, else 1): "
        "they size TRL's generation round, which the dataset must fill, and share the judge's max_concurrency",
    ),
    accelerate_config: Path | None = typer.Option(
        None,
        "--accelerate-config",
        metavar="FILE",
        help="the accelerate config the run is launched with: its num_processes, unless --num-processes is given",
    ),
    audit: bool = typer.Option(False, help="after the checks, audit the judge on a few reference pairs of the data"),
    pairs: int = typer.Option(16, min=1, help="--audit: reference pairs to judge in both orders"),
    strict: bool = typer.Option(False, help="--audit: fail (exit 2) when the judge is useless, instead of warning"),
) -> None:
    """Pre-flight check: config (incl. trl.GRPOConfig), data files, models, endpoints, API-key variables;
    with --audit, whether the judge can tell the data's references apart (`judge-audit` in small)."""
    import yaml

    from .preflight import CHECKS, accelerate_processes, config_kind, config_model

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) if config.is_file() else {}
    except (yaml.YAMLError, UnicodeDecodeError):
        data = {}  # load_config below names the problem
    chosen = kind or config_kind(data if isinstance(data, dict) else {})
    if chosen not in CHECKS:
        _fail(f"--kind must be one of {', '.join(CHECKS)}, got {chosen!r}", 2)
    with user_errors():
        if num_processes is None and accelerate_config is not None:
            num_processes = accelerate_processes(accelerate_config)
        cfg = load_config(config, config_model(chosen))
        lines = _checks(chosen, cfg, probe=not skip_endpoints, num_processes=num_processes)
    typer.echo(f"{config}: {chosen} config")
    _echo_checked(lines)
    if audit and _check_audit(config, cfg, pairs, strict, probe=not skip_endpoints) != "usable":
        typer.echo("all checks passed; read the judge audit's warning above")
        return
    typer.echo("all checks passed")


def _check_audit(config: Path, cfg: BaseModel, pairs: int, strict: bool, probe: bool) -> str:
    """`check --audit`: a small audit after the checks; a useless judge warns (or, --strict, fails)."""
    from .audit import AuditSettings
    from .audit.command import audit_inputs, default_folder, run_audit
    from .audit.report import headline, write_audit

    if not probe:
        _fail("--audit calls the judge: it cannot go with --skip-endpoints", 2)
    folder = default_folder(config)
    with user_errors(prefix="judge audit: "):
        inputs = audit_inputs(cfg)
        result = run_audit(inputs, AuditSettings(pairs=pairs), folder)
    page = write_audit(result, folder)
    report = result.to_json()
    typer.echo(f"  {'ok' if result.verdict == 'usable' else 'warn'}  {headline(report)}; details: {page}")
    for r in result.recommendations:
        typer.echo(f"        - {r.text}")
    for line in _measured_cost_lines(cfg, inputs.samples, result):
        typer.echo(f"  ok  {line}")
    if result.verdict == "useless" and strict:
        _fail(f"the judge is useless on this data ({result.verdict_reasons[0]}): --strict stops here", 2)
    return result.verdict


@app.command("serve-judge")
def serve_judge(
    host: str = typer.Option("127.0.0.1", help="bind address (keep loopback unless you mean it)"),
    port: int = typer.Option(8080),
    model: Path | None = typer.Option(None, help="GGUF file; default: the embedded SmolLM2-135M-Instruct"),
    n_ctx: int = typer.Option(4096, help="context window"),
    log: Path | None = typer.Option(None, help="write the server's own log here"),
) -> None:
    """Run llama.cpp's OpenAI-compatible server with the embedded judge until Ctrl-C (or SIGTERM)."""
    # First thing, before any slow step: Ctrl-C and SIGTERM only set a flag, so no KeyboardInterrupt can
    # land half-way through starting or stopping the child. Installed explicitly because a process
    # started in the background by a non-interactive shell (as CI runs it) inherits SIGINT *ignored*,
    # and Python then installs no handler of its own: the stop request was lost.
    from .server import JudgeServerCancelled, JudgeServerError, LocalJudgeServer, StopFlag

    stop = StopFlag()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)

    server = LocalJudgeServer(model_path=model, host=host, port=port, n_ctx=n_ctx, log_path=log)
    typer.echo(f"starting judge server ({server.model_path.name}) ...")
    try:
        server.start(cancel=stop)
    except JudgeServerCancelled:
        typer.echo("judge server stopped before it was ready")
        return
    except JudgeServerError as err:
        _fail(str(err))
    try:
        typer.echo(f"judge ready at {server.base_url} (model '{server.model_alias}'); Ctrl-C stops it")
        while not stop.requested:
            if server.process is None or server.process.poll() is not None:
                _fail("judge server exited unexpectedly")
            time.sleep(0.2)
    finally:
        server.stop()
    typer.echo("judge server stopped")


def _store_path(run: Path) -> Path:
    path = run / run_layout.CURRICULUM_STORE if run.is_dir() else run
    if not path.is_file():
        _fail(f"no curriculum store at {path}", 2)
    return path


@curriculum_app.command("show")
def curriculum_show(
    run: Annotated[Path, typer.Argument(help="run folder (holding curriculum.sqlite) or the store file")],
    all_samples: bool = typer.Option(False, "--all", help="list every sample's level"),
    events: int = typer.Option(10, help="how many recent level changes (promotions) to list"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Levels per sample, the level histogram and recent level changes (promotions under `dynamic`).

    Reads the store only (it is never changed); a file that is not a curriculum store is refused (exit 2)."""
    import sqlite3
    from collections import Counter

    from .curriculum import CurriculumStore, NotACurriculumStore

    path = _store_path(run)
    try:
        with CurriculumStore(path, read_only=True) as store:
            states = store.states()
            recent = store.events(limit=events)
            consistent = store.integrity_ok()
    except NotACurriculumStore as err:
        _fail(str(err), 2)
    except sqlite3.DatabaseError as err:
        locked = "locked" in str(err)
        why = "another process holds it locked (a running training run holds its judge caches so)" if locked else err
        _fail(f"{path}: cannot read it: {why}", 2)
    if as_json:
        typer.echo(json.dumps({"samples": [s.__dict__ for s in states], "events": recent, "consistent": consistent}))
        return
    hist = Counter(s.level for s in states)
    mean = sum(s.level for s in states) / len(states) if states else 0.0
    typer.echo(f"{len(states)} samples, mean level {mean:.2f}, store consistent: {consistent}")
    for level in sorted(hist):
        typer.echo(f"  level {level}: {hist[level]} samples")
    at_top = sum(1 for s in states if s.level == s.n_refs - 1)
    typer.echo(f"  at the strongest reference: {at_top}")
    if all_samples:
        for s in states:
            typer.echo(f"  {s.key}: level {s.level}/{s.n_refs - 1} (step {s.updated_step})")
    if recent:
        typer.echo("recent level changes:")
        for e in recent:
            typer.echo(f"  step {e['step']}: {e['key']} {e['from_level']} -> {e['to_level']} ({e['writer']})")


@app.command("judge-pair")
def judge_pair(
    question: str = typer.Option(..., help="the writing request"),
    answer_a: str = typer.Option(..., "--a", help="answer in position A (text, or @file)"),
    answer_b: str = typer.Option(..., "--b", help="answer in position B (text, or @file)"),
    criteria: str | None = typer.Option(None, help="per-prompt criteria"),
    config: Path | None = typer.Option(
        None, help="any config with a judge: train, ablation, eval, verl recipe, or judge-only (configs/core.yaml)"
    ),
    local: bool = typer.Option(False, help="start the embedded llama.cpp judge for this call"),
    mode: str | None = typer.Option(None, help="override judge.mode: hard or soft"),
) -> None:
    """Judge one pair and print the judgement as JSON."""
    from .aio import run_sync
    from .judge import JudgeConfig, build_judge
    from .server import LocalJudgeServer

    def text(v: str) -> str:
        if not v.startswith("@"):
            return v
        try:
            return Path(v[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            _fail(f"{v[1:]}: cannot read it as UTF-8 text: {err}", 2)
            raise  # unreachable: _fail exits

    first, second = text(answer_a), text(answer_b)
    with user_errors():
        jc = _judge_of(config) if config else CoreConfig().judge
    local = local or jc.endpoint.base_url == "local"  # the config's own embedded judge (local_judge)
    if mode:
        try:
            jc = JudgeConfig.model_validate({**jc.model_dump(), "mode": mode})
        except ValueError:
            _fail(f"--mode must be 'hard' or 'soft', got {mode!r}", 2)

    async def go(cfg):  # type: ignore[no-untyped-def]
        judge = build_judge(cfg)
        try:
            return await judge.judge(question, first, second, criteria)
        finally:
            await judge.aclose()

    if local:
        with LocalJudgeServer() as server:
            jc = jc.model_copy(
                update={
                    "endpoint": jc.endpoint.model_copy(update={"base_url": server.base_url}),
                    "context_window": jc.context_window or server.n_ctx,
                    "tokenizer": jc.tokenizer or str(server.model_path),
                }
            )
            result = run_sync(go(jc))
    else:
        result = run_sync(go(jc))
    typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    if result.error:
        if result.reason in (Reason.TRANSPORT, Reason.TIMEOUT, Reason.CREDENTIALS):
            typer.echo(
                f"judge endpoint {jc.endpoint.base_url} failed: {' '.join(result.error.split())[:200]}; start a "
                "judge there (`writing-rl serve-judge --port N` for the embedded one), pass --local, or give "
                "--config with judge.endpoint.base_url",
                err=True,
            )
        raise typer.Exit(3)


def _judge_of(config: Path) -> JudgeConfig:
    """The judge a run of `config` would use: any config with a judge section (train, ablation, eval, verl
    recipe, judge-only), read as the command it is for reads it."""
    from .audit.command import load_any

    cfg, _ = load_any(config)
    judge = getattr(cfg, "judge", None)
    if judge is None:
        from .preflight import config_kind

        kind = config_kind(read_yaml(config))
        raise ConfigError(
            f"{config}: {'an' if kind[0] in 'aeiou' else 'a'} {kind} config has no judge: give one that has (train, "
            "ablation, eval, a verl recipe, or a judge-only file like configs/core.yaml)"
        )
    return judge


@app.command("judge-audit")
def judge_audit_cmd(
    config: Annotated[Path, typer.Argument(help="any config with a judge: train, ablation, eval, verl, or judge-only")],
    pairs: int | None = typer.Option(
        None, min=1, help="reference pairs to judge in both orders (default: the config's audit.pairs, else 32)"
    ),
    data: str | None = typer.Option(None, help="samples JSONL to draw the pairs from (default: the config's own)"),
    out: Path | None = typer.Option(
        None, help="folder for audit.json, pairs.jsonl, index.html (default: runs/judge-audit-CONFIG)"
    ),
    seed: int = typer.Option(0, help="which pairs are drawn"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    cache: bool = typer.Option(True, help="use the judge cache (--no-cache: every call reaches the judge)"),
    kind: str | None = typer.Option(None, help="train, ablation, eval or verl; default: read from the keys"),
) -> None:
    """Can this judge tell your references apart? Tier agreement, position and length bias, unknowns, cost."""
    from .audit import AuditSettings
    from .audit.command import audit_inputs, default_folder, load_any, run_audit
    from .audit.report import table, write_audit

    with user_errors():
        cfg, has_dataset = load_any(config, kind)
        inputs = audit_inputs(cfg, data, has_dataset)
        configured = getattr(cfg, "audit", None) or AuditSettings()
        settings = configured.model_copy(update={"pairs": pairs or configured.pairs or 32, "seed": seed})
        folder = out or default_folder(config)
        result = run_audit(inputs, settings, folder, cache=cache, progress=True)
    page = write_audit(result, folder)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        typer.echo(table(result))
        for line in _measured_cost_lines(cfg, inputs.samples, result):
            typer.echo(line)
    typer.echo(f"audit: {page} (pairs.jsonl and audit.json beside it)", err=as_json)


def _measured_cost_lines(cfg: BaseModel, samples: list, result: AuditResult) -> list[str]:
    """The run's judge cost with the tokens the audit measured (train, ablation and verl configs)."""
    if not (hasattr(cfg, "grpo") or hasattr(cfg, "verl")):
        return []
    return _cost_lines_or_note(cfg, samples, result.measured_tokens())


def _cost_lines_or_note(cfg: BaseModel, samples: list | None = None, measured: object = None) -> list[str]:
    """The cost estimate, or one line saying why there is none: an estimate never stops the command."""
    from .preflight import cost_lines, launched_processes

    try:
        return cost_lines(cfg, samples, launched_processes(), measured=measured)
    except Exception as err:
        return [f"judge cost: not estimated ({type(err).__name__}: {' '.join(str(err).split())[:160]})"]


def _overridden(cfg: TrainConfigT, output_dir: str | None, max_steps: int | None) -> TrainConfigT:
    """A training (or ablation) config with the command line's --output-dir and --max-steps applied."""
    updates: dict = {}
    if output_dir:
        updates["output_dir"] = output_dir
    if max_steps is not None:  # through the schema, as the config's own grpo.max_steps: 0 and -5 are refused
        from pydantic import ValidationError

        grpo = cfg.grpo  # type: ignore[attr-defined]
        try:
            updates["grpo"] = type(grpo).model_validate({**grpo.model_dump(), "max_steps": max_steps})
        except ValidationError as err:
            raise ConfigError(
                f"--max-steps {max_steps}: {err.errors()[0]['msg']} (it replaces grpo.max_steps)"
            ) from None
    return cfg.model_copy(update=updates)


def _with_budget(cfg: TrainConfigT, specs: list[str]) -> TrainConfigT:
    """A training config with the command line's `--budget KIND=VALUE` limits in `judge.budget`."""
    if not specs:
        return cfg
    from pydantic import ValidationError

    from .spend import BudgetSpecError, parse_budget_specs

    judge = cfg.judge  # type: ignore[attr-defined]
    try:
        budget = parse_budget_specs(specs, judge.budget)
        judge = type(judge).model_validate({**judge.model_dump(), "budget": budget.model_dump()})
    except BudgetSpecError as err:
        raise ConfigError(str(err)) from None
    except ValidationError as err:
        raise ConfigError(f"--budget {' '.join(specs)}: {err.errors()[0]['msg']}") from None
    return cfg.model_copy(update={"judge": judge})


def _budget_start_lines(cfg: BaseModel, resume: bool, skip_check: bool) -> list[str]:
    """What `train` prints before it starts: the cost estimate where the check (which shows it) was skipped,
    and on a resume what the run has spent so far against its budget."""
    from .spend import checkpoint_spend
    from .training.run_folder import last_checkpoint

    lines = _cost_lines_or_note(cfg) if skip_check else []  # the check, which shows it, was skipped
    if resume:
        judge = cfg.judge  # type: ignore[attr-defined]
        spent = checkpoint_spend(last_checkpoint(Path(cfg.output_dir))).describe(judge.price)  # type: ignore[attr-defined]
        lines.append(f"judge spend so far: {spent}")
    return lines


BUDGET = typer.Option(
    [],
    "--budget",
    metavar="KIND=VALUE",
    help="judge budget for the whole run: calls=N, tokens=N or money=X (needs judge.price), KIND=none lifts it; "
    "repeat for several; replaces judge.budget's limit of that kind (with --resume: raises it and keeps it)",
)


@app.command("train")
def train_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML config; default: the embedded demo")] = None,
    resume: Path | None = typer.Option(None, help="continue the run in this folder from its last checkpoint"),
    output_dir: str | None = typer.Option(None, help="override output_dir"),
    max_steps: int | None = typer.Option(None, help="override grpo.max_steps"),
    overwrite: bool = typer.Option(False, help="delete an earlier run in output_dir and start over"),
    budget: list[str] = BUDGET,
    skip_check: bool = SKIP_CHECK,
) -> None:
    """Train a writer with TRL GRPO, the pairwise judge reward and the reference curriculum.

    Stopped by judge.budget (or --budget): exit status 3, with a checkpoint of the last step and no final/.
    Stopped by SIGTERM or SIGUSR1 (preemption): exit status 75, after the current step, with its checkpoint."""
    from .engines.preemption import Preempted
    from .engines.trl_grpo import JudgeUnavailable
    from .spend import JudgeBudgetReached
    from .train import train  # looked up here, where tests/accelerate_cpu.py wraps it
    from .training.config import load_train_config, resume_config
    from .training.run_folder import busy_problem, run_folder_problem
    from .training.summary import summarize_run

    if resume and config:
        _fail("give either CONFIG or --resume RUN, not both", 2)
    if resume and overwrite:
        _fail("--overwrite starts over, --resume continues: give one of them", 2)
    run_dir: Path | None = None

    def summary_of_a_stopped_run(err: Exception) -> None:
        if run_dir is not None and isinstance(err, (JudgeUnavailable, JudgeBudgetReached, Preempted)):
            typer.echo(summarize_run(run_dir), err=isinstance(err, JudgeUnavailable))

    with user_errors(before_exit=summary_of_a_stopped_run):
        cfg = _overridden(resume_config(resume) if resume else load_train_config(config), output_dir, max_steps)
        cfg = _with_budget(cfg, budget)
        run_dir = Path(cfg.output_dir)
        again = resume / run_layout.CONFIG if resume else config
        start_over = f"writing-rl train {f'{again} ' if again else ''}--output-dir {run_dir} --overwrite"
        if problem := busy_problem(run_dir) or run_folder_problem(run_dir, resume is not None, overwrite, start_over):
            _fail(problem, 2)
        _preflight("train", cfg, skip_check)
        for line in _budget_start_lines(cfg, resume is not None, skip_check):
            typer.echo(f"  {line}")
        run_dir = train(cfg, resume=resume is not None, overwrite=overwrite)
    typer.echo(summarize_run(run_dir))


@app.command("train-verl")
def train_verl_cmd(
    recipe: Annotated[Path, typer.Argument(help="verl recipe YAML (configs/verl/); needs the verl environment")],
    output_dir: str | None = typer.Option(None, help="override output_dir"),
    overwrite: bool = typer.Option(False, help="delete the curriculum and checkpoints in output_dir and start over"),
    skip_check: bool = SKIP_CHECK,
) -> None:
    """Train with verl on Ray (PPO or GRPO): verl's config plus the recipe, the curriculum as a Ray actor."""
    from .verl.launch import VerlRecipe, train_verl

    with user_errors():
        _preflight("verl", load_config(recipe, VerlRecipe), skip_check)
        run_dir = train_verl(recipe, output_dir, overwrite)
    typer.echo(f"run folder: {run_dir}; curriculum: writing-rl curriculum show {run_dir}")


@app.command("build-refs")
def build_refs_cmd(
    config: Annotated[Path, typer.Argument(help="YAML: prompts, generators, output")], skip_check: bool = SKIP_CHECK
) -> None:
    """Generate one reference per generator per prompt (resumable, cached)."""
    from .selection import BuildRefsConfig, build_refs

    with user_errors():
        cfg = load_config(config, BuildRefsConfig)
        _preflight("build-refs", cfg, skip_check)
        result = build_refs(cfg)
    typer.echo(
        f"{result['prompts']} prompts: {result['generated']} references generated, {result['reused']} reused from "
        f"earlier runs, {result['failed']} failed; pool written to {result['output']}"
    )


@app.command("select")
def select_cmd(
    config: Annotated[Path, typer.Argument(help="YAML: pool, policy, critic, strategy")], skip_check: bool = SKIP_CHECK
) -> None:
    """Margin-aware data selection: score policy and references, keep the prompts with most headroom."""
    from .selection import SelectConfig, select

    with user_errors():
        cfg = load_config(config, SelectConfig)
        _preflight("select", cfg, skip_check)
        summary = select(cfg)
    cost = summary["cost"]
    scored_by = (
        f"rule critic {cost['rule_critic']}"
        if "rule_critic" in cost
        else f"critic calls {cost['critic_calls']}, cache hits {cost['critic_cache_hits']}"
    )
    typer.echo(
        f"kept {summary['kept']} of {summary['prompts']} prompts ({summary['strategy']}) -> {cfg.output}; "
        f"{scored_by}; report: {Path(cfg.report_dir) / 'report.md'}"
    )


@app.command("eval")
def eval_cmd(
    config: Annotated[Path, typer.Argument(help="YAML: model, tasks, critic, judge, output_dir")],
    model_path: str | None = typer.Option(None, help="evaluate this checkpoint folder (transformers) instead"),
    endpoint: str | None = typer.Option(
        None, help="evaluate a served model instead (vLLM, SGLang: an OpenAI-compatible URL ending in /v1)"
    ),
    model: str | None = typer.Option(None, "--model", help="with --endpoint: the served model's name"),
    api_key_env: str | None = typer.Option(
        None, help="with --endpoint: the environment variable holding that server's API key (none by default)"
    ),
    concurrency: int | None = typer.Option(None, min=1, help="with --endpoint: requests in flight at once"),
    name: str | None = typer.Option(None, help="model name in results and reports"),
    tasks: str | None = typer.Option(None, help="comma-separated: run only these of the config's tasks"),
    limit: int | None = typer.Option(None, min=1, help="first N items of each task's files (a quick look)"),
    output_dir: str | None = typer.Option(None, help="override output_dir"),
    skip_check: bool = SKIP_CHECK,
) -> None:
    """Evaluate a model: WritingBench-style, LongBench-Write, pairwise arena, LongBench v2 transfer."""
    from .eval.runner import EvalConfig, evaluate, with_command_line

    with user_errors():
        cfg = with_command_line(
            load_config(config, EvalConfig),
            model_path=model_path,
            endpoint=endpoint,
            served_model=model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            name=name,
            tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
            limit=limit,
            output_dir=output_dir,
        )
        if model_path:  # checked here, --skip-check or not: a name nothing can load would fail after the
            from .preflight import check_model  # eval folder exists, half a minute of hub retries later

            check_model("--model-path", model_path)
        _preflight("eval", cfg, skip_check)
        results = evaluate(cfg)
    shown = {k: v for k, v in results.items() if k != "cost"}
    typer.echo(json.dumps(shown, indent=2, ensure_ascii=False, default=str)[:4000])
    typer.echo(f"everything is in {cfg.output_dir} (results.json, generations.jsonl, judgements.jsonl)")


@app.command("rollouts")
def rollouts_cmd(
    run: Annotated[Path, typer.Argument(help="training run folder (or its rollouts.jsonl)")],
    step: int | None = typer.Option(None, help="only this training step (numbered as in metrics.jsonl)"),
    sample: str | None = typer.Option(None, help="only this sample id"),
    limit: int = typer.Option(20, help="print at most this many records (0: all)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON record per line"),
) -> None:
    """What the judge said about each completion: verdicts per order, probabilities, reward and its parts."""
    from .rollouts import format_rollout, read_rollouts

    try:
        rows = read_rollouts(run, step=step, sample=sample)
    except FileNotFoundError as err:
        _fail(str(err), 2)
    except JsonlFileError as err:  # a line that is not a rollout record: named, in one line
        _fail(str(err), 1)
    if not rows:
        _fail("no rollout records match", 1)
    shown = rows if limit <= 0 else rows[:limit]
    for r in shown:
        typer.echo(json.dumps(r.to_json(), ensure_ascii=False) if as_json else format_rollout(r))
    if len(shown) < len(rows) and not as_json:
        typer.echo(f"... {len(rows) - len(shown)} more (use --limit 0, --step or --sample)")


@app.command("ablation")
def ablation_cmd(
    config: Annotated[Path, typer.Argument(help="YAML: a training config plus an `ablation` section")],
    output_dir: str | None = typer.Option(None, help="override output_dir"),
    max_steps: int | None = typer.Option(None, help="override grpo.max_steps of the base config (every arm)"),
    seeds: str | None = typer.Option(None, help="training seeds, e.g. 0,1,2 (replaces ablation.seeds)"),
    arms: str | None = typer.Option(None, help="only these of the config's arms, e.g. dynamic,none"),
    compare_to: str | None = typer.Option(
        None, help="pair every arm against this arm (replaces ablation.compare_to), e.g. none"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (trainings, reuse, time left) and stop"),
    report_only: bool = typer.Option(
        False,
        "--report-only",
        help="train and generate nothing: score the folder's cached held-out answers (every model's must be there; "
        "the models themselves may be gone) and write results.json and the report",
    ),
    keep_into: Path | None = typer.Option(
        None,
        "--keep-results",
        help="then copy what --report-only needs into this folder: the held-out answers, timings and each "
        "training's metrics.jsonl, config.yaml and curriculum store (kilobytes; none of the models)",
    ),
    skip_check: bool = SKIP_CHECK,
) -> None:
    """Ablation: train every arm (schedule, promotion rule, ...) from every seed, compare on held-out prompts
    with intervals over seeds and prompts and paired differences. Re-running reuses finished trainings."""
    from .ablation import AblationConfig, keep_results, narrowed, parse_seeds, prepare, results_table, run_ablation

    with user_errors():
        cfg = _overridden(load_config(config, AblationConfig), output_dir, max_steps)
        cfg = narrowed(
            cfg,
            parse_seeds(seeds) if seeds is not None else None,
            [a.strip() for a in arms.split(",") if a.strip()] if arms is not None else None,
            compare_to,
        )
        if dry_run and (report_only or keep_into is not None):
            raise ConfigError("--dry-run trains and writes nothing: give it without --report-only and --keep-results")
        if dry_run:
            for line in prepare(cfg)[2]:
                typer.echo(line)
            return
        if not report_only:  # every arm checked now, not when its turn comes hours in
            _preflight("ablation", cfg, skip_check)
        results = run_ablation(cfg, report_only)
    typer.echo(results_table(results))
    folder = Path(results["report"]).parent.parent
    typer.echo(f"results: {folder / 'results.json'}; report: {results['report']}")
    if keep_into is not None:
        typer.echo(f"kept {len(keep_results(folder, keep_into))} files of the results in {keep_into}")


@app.command("export-verl")
def export_verl_cmd(
    samples: Annotated[Path, typer.Argument(help="JSONL file of training samples")],
    out: Path = typer.Option(..., "--out", help="folder for train.parquet (and val.parquet)"),
    val: Path | None = typer.Option(None, help="JSONL file of validation samples"),
    val_fraction: float | None = typer.Option(None, help="hold out this seeded random share of SAMPLES instead"),
    seed: int = typer.Option(0, help="seed of the --val-fraction draw"),
    data_source: str = typer.Option("writing_rl", help="the rows' data_source (verl groups its metrics by it)"),
) -> None:
    """Write samples as verl's RL parquet (docs/scale-out.md): chat prompt, references and criteria in extra_info.

    OUT is left holding this export only: an earlier export's val.parquet that this one does not write is
    removed; other files are never touched (the command lists them)."""
    from .data import load_jsonl
    from .verl.export import ExportError, export_verl

    try:
        result = export_verl(
            load_jsonl(samples), out, load_jsonl(val) if val else None, val_fraction, seed, data_source
        )
    except (FileNotFoundError, ExportError) as err:
        _fail(str(err), 2)
    except DATA_ERRORS as err:
        _fail(str(err), 1)
    typer.echo(f"{result.train_count} training samples -> {result.train_path}")
    if result.val_path is not None:
        typer.echo(f"{result.val_count} validation samples -> {result.val_path}")
    else:
        typer.echo("no validation split (give --val FILE or --val-fraction F to write val.parquet)")
    for path in result.removed:
        typer.echo(f"removed {path}: an earlier export's file that this export does not write")
    if result.others:
        shown = ", ".join(p.name for p in result.others[:5]) + (" ..." if len(result.others) > 5 else "")
        typer.echo(
            f"note: {out} also holds {len(result.others)} file(s) export-verl did not write ({shown}): left as they are"
        )


@app.command("report")
def report_cmd(
    runs: Annotated[
        list[Path], typer.Argument(help="training run folders and/or eval folders, or one ablation folder")
    ],
    out: Path = typer.Option(Path("report"), help="folder for index.html and its PNGs"),
) -> None:
    """One HTML page: reward and win-rate curves, the curriculum picture, eval tables side by side; for an
    ablation folder, the ablation's page. A folder it cannot read is named, and nothing is written (exit 2)."""
    from .eval.report import write_report

    with user_errors():
        page = write_report(runs, out)
    typer.echo(f"report: {page}")


def main(argv: list[str] | None = None) -> None:
    """The console entry: a config error is one line (exit 2), any other unexpected error one line naming its
    type (exit 1); `--debug` shows the traceback instead."""
    try:
        app(args=argv)
    except ConfigError as err:
        if _debug:
            raise
        typer.echo(str(err), err=True)
        sys.exit(2)
    except Exception as err:
        if _debug:
            raise
        text = " ".join(str(err).split())[:300]
        typer.echo(f"error: {type(err).__name__}: {text} (run with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
