"""One mapping from our error classes to the command's one line and exit status (`cli.user_errors`)."""

from __future__ import annotations

import pytest
import typer

from writing_rl.cli import user_errors
from writing_rl.data import SampleFileError
from writing_rl.endpoint import EndpointError
from writing_rl.engines.preemption import EXIT_PREEMPTED, Preempted
from writing_rl.errors import ConfigError
from writing_rl.spend import JudgeBudgetReached


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("judge.mode: no such mode"), 2),
        (EndpointError("cannot reach http://127.0.0.1:9/v1"), 2),
        (SampleFileError("s.jsonl", []), 1),
        (JudgeBudgetReached("spent 10 of 10 calls"), 3),
        (Preempted("SIGTERM"), EXIT_PREEMPTED),
    ],
)
def test_each_error_class_exits_with_its_own_status_and_one_line(capsys, error, code):
    seen: list[Exception] = []
    with pytest.raises(typer.Exit) as exit_, user_errors(prefix="judge audit: ", before_exit=seen.append):
        raise error
    assert exit_.value.exit_code == code and seen == [error]
    assert capsys.readouterr().err == f"judge audit: {error}\n"


class Foreign(ValueError):
    exit_code = 2  # not ours: a library's error with the same attribute is a bug to show, not a user's mistake


@pytest.mark.parametrize("error", [KeyError("x"), ValueError("x"), Foreign("x")])
def test_anything_else_goes_on_to_main(error):
    with pytest.raises(type(error)), user_errors():
        raise error
