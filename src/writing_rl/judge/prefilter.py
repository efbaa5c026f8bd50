"""Which of the sanitiser's rules could match a text at all, found in one pass.

Matching the rules with Python's `re` costs 12–17 µs per word, one scan of the text per rule, and
every answer and reference a judge reads goes through it: at 256 judge calls in flight that is most
of the reward path's CPU. Hyperscan scans for all the rules at once (~0.2 µs per word). Its
*prefilter* mode takes the rules as they are, lookarounds and all, by loosening what it cannot run,
and is guaranteed to report a superset of the texts the exact patterns match. So `hits` asks the
prefilter which rules may match and runs only those with `re`: the result is `re`'s, exactly, and
for ordinary writing (which trips no rule) no `re` scan runs at all.

That guarantee is about the same pattern language; the two engines agree on what `\\w`, `\\s`,
`\\b` and case-insensitivity mean only for some characters. A text with any character outside
`SAME_IN_BOTH` (ASCII text characters, Latin-1 letters, common CJK ideographs and punctuation) runs
every rule, as without the prefilter. `tests/test_prefilter.py` checks, on the attack suite, real
benchmark texts and generated ones, that the hits are the same either way.

Compiling the rules takes ~5 s, so the compiled database is kept in the user cache folder
(`$WRITING_RL_CACHE`, default `~/.cache/writing-rl`) under a digest of the patterns and the
Hyperscan version, and loaded in milliseconds afterwards. `WRITING_RL_PREFILTER=off` turns the
prefilter off; without Hyperscan (not installed, or no wheel for the platform) every rule runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..user_cache import cache_dir

log = logging.getLogger(__name__)

# Characters on which Python's `re` (Unicode str patterns) and Hyperscan (UTF-8, Unicode properties)
# agree about word characters, spaces, word boundaries and case: tab, newline, carriage return and
# printable ASCII; Latin-1 letters; general punctuation (dashes, quotes, ellipsis; not the line and
# paragraph separators); CJK punctuation without the ideographic space and the combining tone marks;
# the CJK ideographs of Unicode 1.1 (later additions may be letters to one engine and not the other);
# fullwidth punctuation without the underscore.
SAME_IN_BOTH = re.compile(
    "[\t\n\r\x20-\x7e\xc0-\xd6\xd8-\xf6\xf8-\xff\u2010-\u2027\u3001-\u3029\u3030-\u303f\u4e00-\u9fa5"
    "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff3e\uff40\uff5b-\uff65]*"
)


class Prefilter:
    """A compiled Hyperscan database of `patterns` in prefilter mode; one scratch space per thread."""

    def __init__(self, patterns: Sequence[re.Pattern[str]], folder: Path | None = None):
        import hyperscan

        self._hs = hyperscan
        self._expressions = [p.pattern.encode("utf-8") for p in patterns]
        self._flags = [self._hs_flags(p.flags) for p in patterns]
        self._db = self._load_or_compile(folder or cache_dir() / "hyperscan")
        self._local = threading.local()

    def _hs_flags(self, flags: int) -> int:
        hs = self._hs
        # Multi-line anchors match wherever the single-line ones do (and more): still a superset.
        out = hs.HS_FLAG_PREFILTER | hs.HS_FLAG_UTF8 | hs.HS_FLAG_UCP | hs.HS_FLAG_ALLOWEMPTY
        out |= hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_MULTILINE
        if flags & re.IGNORECASE:
            out |= hs.HS_FLAG_CASELESS
        if flags & re.DOTALL:
            out |= hs.HS_FLAG_DOTALL
        return out

    def digest(self) -> str:
        h = hashlib.sha256(f"hyperscan {getattr(self._hs, '__version__', '?')}\n".encode())
        for expression, flags in zip(self._expressions, self._flags):
            h.update(b"%d\x00%s\x00" % (flags, expression))
        return h.hexdigest()[:24]

    def _compile(self) -> Any:
        db = self._hs.Database()
        db.compile(expressions=self._expressions, ids=list(range(len(self._expressions))), flags=self._flags)
        return db

    def _load_or_compile(self, folder: Path) -> Any:
        path = folder / f"sanitize-rules-{self.digest()}.hsdb"
        try:
            return self._hs.loadb(path.read_bytes(), self._hs.HS_MODE_BLOCK)
        except FileNotFoundError:
            pass
        except Exception as err:  # a truncated or foreign file: compile and replace it
            log.warning("recompiling the sanitiser's prefilter: %s could not be loaded (%s)", path, err)
        db = self._compile()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
            tmp.write_bytes(self._hs.dumpb(db))
            os.replace(tmp, path)  # atomic: a process reading it sees the old file or the whole new one
        except OSError as err:
            log.info("the sanitiser's prefilter is not cached (%s): it is compiled in each process", err)
        return db

    def candidates(self, text: str) -> set[int] | None:
        """Indices of the patterns that may match `text`; None when the engines may disagree on it."""
        if SAME_IN_BOTH.fullmatch(text) is None:
            return None
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self._db)
        found: set[int] = set()
        self._db.scan(text.encode("utf-8"), match_event_handler=lambda i, *_: found.add(i), scratch=scratch)
        return found


def prefilter_for(patterns: Sequence[re.Pattern[str]]) -> Prefilter | None:
    """A prefilter for these patterns; None where it is turned off or cannot be built (every rule runs)."""
    if os.environ.get("WRITING_RL_PREFILTER", "on").lower() in ("off", "0", "false", "no"):
        return None
    try:
        return Prefilter(patterns)
    except ImportError:
        log.warning("hyperscan is not installed: the sanitiser runs every rule on every text (slower)")
    except Exception as err:  # a rule Hyperscan cannot take: correct, only slower
        log.warning("the sanitiser's prefilter could not be built (%s): every rule runs on every text", err)
    return None
