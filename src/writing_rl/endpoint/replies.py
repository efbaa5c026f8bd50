"""The shapes an endpoint's 200 reply must have, read in one typed pass (pydantic-core parses and checks the JSON).

A body that is not JSON, or JSON without the fields the caller reads in the types it reads them as, is
malformed: `read_reply` raises `MalformedReply`, which the client retries and then reports as
`Reason.BAD_RESPONSE`, so no caller ever indexes into a shape it did not get. Each shape lists only the
fields its caller reads (other fields are skipped unbuilt): a chat reply's `logprobs` is read, and so
checked, only when log-probabilities were asked for. A server that ignores the request for
log-probabilities (no `logprobs`, or null) is not malformed: it gives no tokens, as before. `usage` is
optional; where given it is an object with counts (numbers of tokens, or null).

Measured against the unchecked read it replaced (orjson and `dict.get`; `benchmarks/reply_parse.py`,
docs/performance.md): about +1 µs a reply for a hard verdict or a soft one via /completions, +27 µs for a
chat reply of 8 tokens x 20 alternatives.
"""

from __future__ import annotations

from typing import Annotated, Any, Required

from annotated_types import Len
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts before Python 3.12

_STRICT = ConfigDict(strict=True)  # a string is a string, a number a number: nothing is coerced
Count = Annotated[int, Field(ge=0, strict=False)]  # token counts: 12 or 12.0 (accounting, not the answer)


class MalformedReply(ValueError):
    """A 200 body that is not the reply asked for; the message names the first wrong field and quotes the body."""


@with_config(_STRICT)
class Usage(TypedDict, total=False):
    prompt_tokens: Count | None
    completion_tokens: Count | None


@with_config(_STRICT)
class Message(TypedDict):
    content: str


@with_config(_STRICT)
class TopLogprob(TypedDict):
    token: str
    logprob: float


@with_config(_STRICT)
class TokenLogprob(TypedDict, total=False):
    token: str
    top_logprobs: list[TopLogprob] | None


@with_config(_STRICT)
class ChatLogprobs(TypedDict, total=False):
    content: list[TokenLogprob] | None


@with_config(_STRICT)
class ChatChoice(TypedDict):
    message: Message


@with_config(_STRICT)
class ChatChoiceWithLogprobs(TypedDict, total=False):
    message: Required[Message]
    logprobs: ChatLogprobs | None


@with_config(_STRICT)
class CompletionLogprobs(TypedDict, total=False):
    tokens: list[str] | None
    top_logprobs: list[dict[str, float] | None] | None


@with_config(_STRICT)
class CompletionChoice(TypedDict):
    text: str


@with_config(_STRICT)
class CompletionChoiceWithLogprobs(TypedDict, total=False):
    text: Required[str]
    logprobs: CompletionLogprobs | None


@with_config(_STRICT)
class AnyReply(TypedDict, total=False):
    """What every reply has: at least one choice (of whatever shape), and maybe usage."""

    choices: Required[Annotated[list[dict[str, Any]], Len(min_length=1)]]
    usage: Usage | None


@with_config(_STRICT)
class ChatReply(TypedDict, total=False):
    choices: Required[Annotated[list[ChatChoice], Len(min_length=1)]]
    usage: Usage | None


@with_config(_STRICT)
class ChatReplyWithLogprobs(TypedDict, total=False):
    choices: Required[Annotated[list[ChatChoiceWithLogprobs], Len(min_length=1)]]
    usage: Usage | None


@with_config(_STRICT)
class CompletionReply(TypedDict, total=False):
    choices: Required[Annotated[list[CompletionChoice], Len(min_length=1)]]
    usage: Usage | None


@with_config(_STRICT)
class CompletionReplyWithLogprobs(TypedDict, total=False):
    choices: Required[Annotated[list[CompletionChoiceWithLogprobs], Len(min_length=1)]]
    usage: Usage | None


Shape = TypeAdapter[Any]
ANY_REPLY: Shape = TypeAdapter(AnyReply)
CHAT: Shape = TypeAdapter(ChatReply)
CHAT_LOGPROBS: Shape = TypeAdapter(ChatReplyWithLogprobs)
COMPLETION: Shape = TypeAdapter(CompletionReply)
COMPLETION_LOGPROBS: Shape = TypeAdapter(CompletionReplyWithLogprobs)

EXCERPT_CHARS = 200


def excerpt(raw: bytes) -> str:
    """The start of a body, quoted, for an error message (decoded only on the way to an error)."""
    text = raw[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    return repr(text) + (f" ({len(raw)} bytes)" if len(raw) > EXCERPT_CHARS else "")


def read_reply(raw: bytes, shape: Shape) -> dict[str, Any]:
    """The body as the dict `shape` describes (fields it does not list are left out), or `MalformedReply`."""
    try:
        return shape.validate_json(raw)
    except ValidationError as err:
        problems = err.errors(include_url=False, include_input=False, include_context=False)
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MalformedReply(f"{where + ': ' if where else ''}{first['msg']}{more}: {excerpt(raw)}") from None
