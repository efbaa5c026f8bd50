"""EQ-Bench Creative Writing v3 rubric score, computed as github.com/EQ-bench/creative-writing-bench computes it.

That repository has no licence, so nothing of it is copied here: its prompts, criteria and judge template
are read at run time from the user's own clone (`tasks.creative_writing_v3.repo`), and what follows
re-implements the facts of its code (`core/benchmark.py`, `core/conversation.py`, `core/scoring.py`,
`utils/api.py`):

- Prompts: `data/creative_writing_prompts_v3.json`, an object of prompt id -> {writing_prompt,
  seed_modifiers, ...}; a prompt without seed modifiers is skipped. Iteration i (from 1) of a prompt uses
  seed modifier (i - 1) mod (number of seeds), put in place of `<SEED>` in the writing prompt; the
  result is the only (user) message, no system prompt.
- Generation: temperature 0.7, min_p 0.1, at most 4000 tokens; a `<think>`/`<reasoning>` block is cut
  off and the text stripped; a piece shorter than 500 characters is a failed generation (officially after
  3 tries; here after one, see `GENERATION_ATTEMPTS`) and is left out of the score.
- Judging: `data/creative_writing_judging_prompt.txt` filled by `str.format` with the writing prompt as
  stored (its `<SEED>` left in place, as the official code does), the piece, the criteria of
  `data/creative_writing_criteria.txt` as "- name" lines and those of `data/negative_criteria.txt`
  joined by ", "; temperature 0, at most 1000 tokens, one user message.
- Reading the reply: every "name: N", "name: Score N" and "name: [N]" (`parse_scores`); values above 20
  are dropped; a later line for the same name wins.
- Score: each parsed value, a negative criterion's as 20 - value, values still above 20 dropped; the
  piece's score is their mean (0-20); the rubric score is the mean over pieces, and x 5 for 0-100.
  Every parsed name counts, whether or not it is one of the listed criteria (as officially).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import subprocess
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .stats import bootstrap_ci

TASK = "creative_writing_v3"
SCORER_VERSION = "eqbench-creative-writing-v3-official-1"
UPSTREAM = "https://github.com/EQ-bench/creative-writing-bench"

PROMPTS_FILE = "data/creative_writing_prompts_v3.json"
CRITERIA_FILE = "data/creative_writing_criteria.txt"
NEGATIVE_FILE = "data/negative_criteria.txt"
JUDGE_PROMPT_FILE = "data/creative_writing_judging_prompt.txt"
FILES = (PROMPTS_FILE, CRITERIA_FILE, NEGATIVE_FILE, JUDGE_PROMPT_FILE)

# `core/conversation.py` generate_creative_piece: the test model's settings (top_p is not sent: server default)
GENERATION: dict[str, float | int] = {"temperature": 0.7, "min_p": 0.1, "max_tokens": 4000}
GENERATION_ATTEMPTS = 3  # official tries per piece while it is too short; this task makes one (the store caches)
OFFICIAL_ITERATIONS = 3  # the README's leaderboard setting (the script's own default is 1)
MIN_PIECE_CHARS = 500
# `core/conversation.py` judge: temperature 0, 1000 tokens
JUDGE_SAMPLING: dict[str, float | int] = {"temperature": 0.0, "max_tokens": 1000}
SCORE_MAX = 20.0
SEED_MARK = "<SEED>"
PLACEHOLDERS = ("writing_prompt", "test_model_response", "creative_writing_criteria", "lower_is_better_criteria")


class BenchmarkFilesError(ConfigError):
    """The clone given as `tasks.creative_writing_v3.repo` lacks a file, or a file is not in the official format."""


@dataclass(frozen=True)
class Prompt:
    id: str
    writing_prompt: str
    seed_modifiers: tuple[str, ...]
    category: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class Benchmark:
    """The official files, read and checked; `skipped` are prompt ids without seed modifiers (official: skipped)."""

    prompts: tuple[Prompt, ...]
    criteria: tuple[str, ...]
    negative: tuple[str, ...]
    judge_template: str
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item:
    """One piece to write: a prompt at one iteration (ids `prompt_id:iteration`, iterations from 1)."""

    id: str
    prompt_id: str
    iteration: int
    seed_modifier: str
    prompt: str


# -- the official files ---------------------------------------------------------------------------------


def _read(repo: Path, name: str) -> str:
    path = repo / name
    if not path.is_file():
        raise BenchmarkFilesError(
            f"tasks.creative_writing_v3.repo: {repo}: {name} not found (give the folder of your clone of {UPSTREAM})"
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BenchmarkFilesError(f"{path}: cannot be read as UTF-8 text: {err}") from err


def _lines(repo: Path, name: str) -> tuple[str, ...]:
    """One criterion a line, stripped, blank lines skipped (as officially read)."""
    return tuple(line.strip() for line in _read(repo, name).splitlines() if line.strip())


def _prompts(repo: Path) -> tuple[tuple[Prompt, ...], tuple[str, ...]]:
    path = repo / PROMPTS_FILE
    try:
        data = json.loads(_read(repo, PROMPTS_FILE))
    except json.JSONDecodeError as err:
        raise BenchmarkFilesError(f"{path}: not JSON ({err})") from err
    if not isinstance(data, dict) or not data:
        raise BenchmarkFilesError(f"{path}: expected a JSON object of prompt id -> prompt, got {type(data).__name__}")
    prompts, skipped = [], []
    for key, entry in data.items():
        text = entry.get("writing_prompt") if isinstance(entry, dict) else None
        seeds = entry.get("seed_modifiers", []) if isinstance(entry, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise BenchmarkFilesError(f"{path}: prompt {key!r} has no 'writing_prompt' text")
        if not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds):
            raise BenchmarkFilesError(f"{path}: prompt {key!r}: 'seed_modifiers' is not a list of strings")
        if not seeds:
            skipped.append(str(key))
            continue
        category, title = entry.get("category"), entry.get("title")
        prompts.append(
            Prompt(
                str(key),
                text,
                tuple(seeds),
                category if isinstance(category, str) else None,
                title if isinstance(title, str) else None,
            )
        )
    if not prompts:
        raise BenchmarkFilesError(f"{path}: no prompt has seed modifiers, so there is nothing to write")
    return tuple(prompts), tuple(skipped)


def _check_template(repo: Path, template: str) -> None:
    """Fill the template once with markers: a placeholder it does not know, a stray brace, or no place for the
    piece would otherwise surface only at the first judge call (or never, for the piece)."""
    marker = "\x00piece\x00"
    try:
        filled = template.format(**{name: (marker if name == "test_model_response" else "") for name in PLACEHOLDERS})
    except (KeyError, IndexError, ValueError) as err:
        raise BenchmarkFilesError(
            f"{repo / JUDGE_PROMPT_FILE}: not a template this task can fill ({type(err).__name__}: {err}); "
            f"its placeholders are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        ) from err
    if marker not in filled:
        raise BenchmarkFilesError(
            f"{repo / JUDGE_PROMPT_FILE}: has no {{test_model_response}}: the judge would not see the piece"
        )


def load_benchmark(repo: str | Path) -> Benchmark:
    """The four official files of the clone at `repo`, checked; raises BenchmarkFilesError naming what is wrong."""
    folder = Path(repo).expanduser()
    if not folder.is_dir():
        raise BenchmarkFilesError(
            f"tasks.creative_writing_v3.repo: {repo}: no such folder (clone {UPSTREAM} and give its folder)"
        )
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise BenchmarkFilesError(
            f"tasks.creative_writing_v3.repo: {repo}: {', '.join(missing)} not found "
            f"(give the folder of your clone of {UPSTREAM})"
        )
    prompts, skipped = _prompts(folder)
    criteria = _lines(folder, CRITERIA_FILE)
    if not criteria:
        raise BenchmarkFilesError(f"{folder / CRITERIA_FILE}: holds no criteria")
    template = _read(folder, JUDGE_PROMPT_FILE)
    _check_template(folder, template)
    return Benchmark(prompts, criteria, _lines(folder, NEGATIVE_FILE), template, skipped)


def source(repo: str | Path) -> dict[str, Any]:
    """Where the official files came from, for the scorer record: the folder, its git commit (None when the
    folder is not the top of a git checkout, or git is missing) and a hash of the four files' bytes."""
    folder = Path(repo).expanduser().resolve()
    digest = hashlib.sha256()
    for name in FILES:
        path = folder / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"<missing>") + b"\0")
    return {"repo": str(folder), "repo_commit": git_commit(folder), "files_sha256": digest.hexdigest()[:16]}


def git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != folder:
        return None  # not a checkout, or a folder inside some other repository
    return lines[1]


# -- prompts --------------------------------------------------------------------------------------------


def items(prompts: Sequence[Prompt], iterations: int) -> list[Item]:
    """Every (prompt, iteration) piece, prompt by prompt, with the official seed choice.

    Refuses iterations beyond a prompt's seed modifiers: the prompt would repeat, and the generation store,
    keyed by the prompt, would hand back the earlier piece instead of a new one."""
    short = [p.id for p in prompts if len(p.seed_modifiers) < iterations]
    if short:
        raise BenchmarkFilesError(
            f"tasks.creative_writing_v3.iterations: {iterations} is more than the seed modifiers of prompt(s) "
            f"{', '.join(short[:5])}{' ...' if len(short) > 5 else ''}: iterations past them would repeat a prompt"
        )
    out = []
    for p in prompts:
        for i in range(1, iterations + 1):
            seed = p.seed_modifiers[(i - 1) % len(p.seed_modifiers)]
            out.append(Item(f"{p.id}:{i}", p.id, i, seed, p.writing_prompt.replace(SEED_MARK, seed)))
    return out


def strip_reasoning(text: str) -> str:
    """The official cut of a reasoning block: all up to the first `</think>` (then `</reasoning>`) goes, when both
    its opening and closing tags are present."""
    for opening, closing in (("<think>", "</think>"), ("<reasoning>", "</reasoning>")):
        if opening in text and closing in text:
            text = text[text.find(closing) + len(closing) :]
    return text


def clean_piece(output: str | None) -> str | None:
    """The piece as the official code keeps it, or None when it failed (no output, or under 500 characters)."""
    if output is None:
        return None
    piece = strip_reasoning(output).strip()
    return piece if len(piece) >= MIN_PIECE_CHARS else None


def judge_prompt(bench: Benchmark, prompt: Prompt, piece: str) -> str:
    """The official template filled as the official code fills it (the writing prompt with `<SEED>` unreplaced)."""
    return bench.judge_template.format(
        writing_prompt=prompt.writing_prompt,
        test_model_response=piece,
        creative_writing_criteria="\n".join("- " + c for c in bench.criteria),
        lower_is_better_criteria=", ".join(bench.negative),
    )


# -- reading the judge ----------------------------------------------------------------------------------

_NUMBER = r"(-?\d+(?:\.\d+)?)"
# What must follow a "name:" colon in each official pattern, matched at one position only (see `_pairs`).
_AFTER_COLON = (re.compile(r"\s*(?:Score\s+)?" + _NUMBER), re.compile(r"\s*\[" + _NUMBER + r"\]"))


def _pairs(text: str, after: re.Pattern[str]) -> Iterator[tuple[str, str]]:
    """The (name, number) matches of the official `(.*?):<after>` in `re.findall` order, in linear time.

    The official pattern tries every start position and, from each, every colon to the end of its line: on a
    long line of colons that lead nowhere that is quadratic. The matches are the same when read this way: a
    match starts where the previous one ended (or at a line start), its name runs to the first colon on that
    line after which `after` matches, and the next search starts where the match ended."""
    pos, n, line_end = 0, len(text), -1
    while pos < n:
        if line_end < pos:
            line_end = text.find("\n", pos)
            line_end = n if line_end < 0 else line_end
        colon = text.find(":", pos, line_end)
        while colon >= 0:
            m = after.match(text, colon + 1)
            if m:
                yield text[pos:colon], m.group(1)
                pos = m.end()
                break
            colon = text.find(":", colon + 1, line_end)
        else:
            pos = line_end + 1


def parse_scores(reply: str) -> dict[str, float]:
    """name -> score as `core/scoring.py` reads a judge reply: "name: N" / "name: Score N" matches first, then
    "name: [N]"; names stripped; a value above 20 is dropped; a later value for a name replaces the earlier.

    One difference: a number too long to be finite (hundreds of digits) is dropped; officially it would be
    kept as -inf and make the whole rubric score -inf."""
    scores: dict[str, float] = {}
    for after in _AFTER_COLON:
        for name, number in _pairs(reply, after):
            value = float(number)
            if value <= SCORE_MAX and math.isfinite(value):
                scores[name.strip()] = value
    return scores


# -- the score ------------------------------------------------------------------------------------------


def piece_score(scores: Mapping[str, float], negative: Collection[str]) -> float | None:
    """Mean of the values, a negative criterion's as 20 - value, values above 20 left out; 0-20, or None."""
    values = [SCORE_MAX - v if name in negative else v for name, v in scores.items()]
    kept = [v for v in values if v <= SCORE_MAX]
    return sum(kept) / len(kept) if kept else None


@dataclass(frozen=True)
class Summary:
    score: float | None  # 0-100, rounded as officially (2 places)
    score_0_20: float | None
    ci95: tuple[float, float] | None  # 0-100, a percentile bootstrap over pieces
    per_prompt: dict[str, float | None]  # 0-100, the mean of each prompt's scored pieces

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "score_0_20": self.score_0_20,
            "ci95": None if self.ci95 is None else list(self.ci95),
            "per_prompt": self.per_prompt,
        }


def summarize(pieces: Sequence[tuple[str, float | None]], resamples: int = 2000) -> Summary:
    """The rubric score of (prompt id, piece score 0-20 or None) pairs: the mean over scored pieces (official
    `compute_creative_scores`, x 5 and rounded as `compute_single_benchmark_score_creative`), its 95% interval
    (pieces resampled, as the official bootstrap resamples its tasks), and each prompt's mean. With no scored
    piece it is None (officially 0)."""
    scored = [s for _, s in pieces if s is not None]
    by_prompt: dict[str, list[float]] = {}
    for prompt_id, s in pieces:
        by_prompt.setdefault(prompt_id, [])
        if s is not None:
            by_prompt[prompt_id].append(s)
    per_prompt = {p: (5 * statistics.fmean(v) if v else None) for p, v in by_prompt.items()}
    if not scored:
        return Summary(None, None, None, per_prompt)
    mean = sum(scored) / len(scored)
    ci = bootstrap_ci(scored, resamples=resamples)
    return Summary(round(mean * 5.0, 2), round(mean, 2), (5 * ci.low, 5 * ci.high), per_prompt)
