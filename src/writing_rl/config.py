"""YAML configs validated by pydantic schemas, with errors that name the field and the file."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .curriculum import CurriculumConfig
from .errors import ConfigError  # noqa: F401  (re-exported: `from writing_rl.config import ConfigError`)
from .judge import JudgeConfig
from .reward import RewardConfig

M = TypeVar("M", bound=BaseModel)


class LocalJudgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="start the embedded llama.cpp judge (SmolLM2-135M) for this run")
    n_ctx: int = Field(4096, ge=512)
    n_threads: int | None = Field(None, ge=1)


class CoreConfig(BaseModel):
    """Judge, reward and curriculum: the parts every engine shares."""

    model_config = ConfigDict(extra="forbid")

    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last one)."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node)
        return self.construct_document(node)


class DuplicateKey(yaml.YAMLError):
    pass


def _refuse_duplicate_keys(node: yaml.Node, where: tuple[str, ...] = (), seen: set[int] | None = None) -> None:
    """Raise `DuplicateKey` naming the first key given twice in a mapping, nested ones by their dotted path."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if (key.tag, key.value) in first_line:
                    name = ".".join((*where, key.value))
                    raise DuplicateKey(
                        f"key '{name}' is given twice (lines {first_line[key.tag, key.value]} and {line}): YAML "
                        "would silently keep the second; keep one"
                    )
                first_line[key.tag, key.value] = line
            _refuse_duplicate_keys(value, (*where, str(getattr(key, "value", "?"))), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, (*where, str(i)), seen)


def read_yaml(path: str | Path) -> Any:
    """The YAML document in `path` (None for an empty one); `ConfigError` for a missing or unreadable file,
    invalid YAML or a key given twice."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a config file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})"
        ) from None
    except DuplicateKey as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What YAML's parser said and where, without the quoted line (which may hold a secret)."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return " ".join(str(err).split())
    said = "; ".join(p for p in (err.context, err.problem) if p) or type(err).__name__
    mark = err.problem_mark or err.context_mark
    return f"{said} (line {mark.line + 1}, column {mark.column + 1})" if mark else said


def load_config(path: str | Path, model: type[M]) -> M:
    """The config in `path`, validated by `model`; a `ConfigError` of one line naming the key (and the file)
    otherwise. A config written for another command is named as such, with the command to run."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        raise ConfigError(
            f"{path} is empty: write the config's keys in it (the files in configs/ are examples), or give another file"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        try:
            other = _other_command(path, data, model, errors)
        except ImportError:  # another command's schema needs what this install lacks (trl, say)
            other = None
        raise ConfigError(other or f"{path}: " + "; ".join(_problem(model, e) for e in errors)) from None


def _other_command(path: Path, data: dict[str, Any], model: type[BaseModel], errors: list[Any]) -> str | None:
    """`this is an eval config: run writing-rl eval PATH` when the keys `model` refused at the top level are
    those of another command's config; None when they are not (a misspelt key, say)."""
    from .preflight import COMMANDS, KIND_KEYS, config_kind, config_model

    top = [e for e in errors if len(e["loc"]) == 1]
    unknown = {str(e["loc"][0]) for e in top if e["type"] == "extra_forbidden"}
    missing = [str(e["loc"][0]) for e in top if e["type"] == "missing"]
    kind = config_kind(data)
    other = config_model(kind)
    if other is model:
        return None
    if unknown:  # keys this command does not take, and the other command does
        if not unknown <= set(other.model_fields):
            return None
        deciding = [k for k in (*KIND_KEYS.get(kind, ()), "grpo", "dataset") if k in unknown]  # the telling ones
        has = f"it has {', '.join((deciding + sorted(unknown - set(deciding)))[:3])}"
    else:  # only sections this command needs are missing, and every key belongs to the other command
        if not missing or len(missing) < len(errors) or not set(data) <= set(other.model_fields):
            return None
        has = f"it has no {', '.join(missing)}"
    expected = next((k for k in COMMANDS if config_model(k) is model), None)
    not_that = f", not {_a(expected)} {expected} config" if expected else ""
    return f"{path}: this is {_a(kind)} {kind} config ({has}){not_that}: run `writing-rl {COMMANDS[kind]} {path}`"


def _a(word: str | None) -> str:
    return "an" if word and word[0] in "aeiou" else "a"


def _problem(model: type[BaseModel], error: Any) -> str:
    """`field.path: message`, with the closest known key for a misspelt one."""
    loc = error["loc"]
    where = ".".join(str(p) for p in loc) or "(top)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key{did_you_mean(str(loc[-1]), _keys_at(model, loc[:-1]))}"
    return f"{where}: {error['msg']}"


def did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the (nested) model found at `loc`; [] where the path leaves the models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):  # a list index: `_model_in` already took the list's item model
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _model_in(fields[part].annotation)
    return list(getattr(current, "model_fields", None) or [])


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside `X | None`, `list[X]` or `dict[str, X]`, else the annotation itself."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation
