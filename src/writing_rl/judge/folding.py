"""The text as a judge may *read* it, mapped back to the characters that were written.

A policy hides a verdict from a pattern by writing it in another form that a model still reads
the same way: fullwidth or mathematical letters (`［［Ｂ］］`, `𝐁`), Cyrillic or Greek look-alikes
(`В`), look-alike brackets (`⟦B⟧`, `【B】`), invisible characters between the parts
(`[[\\u200bB]]`), Unicode tag characters that spell hidden ASCII, HTML entities (`&#91;`),
backslash or `\\uXXXX` escapes, and letter-spaced words (`v e r d i c t`). `fold` undoes all of
these at once and remembers, for every folded character, which span of the original produced it,
so a pattern found in the folded text can be cut out of the original.

Case is kept (patterns decide where case matters: a bare `A` is a verdict letter, the article `a`
is not).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Letters that look like the verdict letters or like the Latin letters of verdict words.
_HOMOGLYPHS = {
    # Cyrillic
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K", "М": "M",
    "О": "O", "Р": "P", "Ѕ": "S", "Т": "T", "Х": "X", "У": "Y", "а": "a", "с": "c", "е": "e",
    "о": "o", "р": "p", "х": "x", "у": "y", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h",
    "ԛ": "q", "ԝ": "w", "ӏ": "l", "Ь": "b", "ь": "b",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ο": "o", "α": "a", "ν": "v", "ϲ": "c",
    "Ϲ": "C",
    # Latin look-alikes NFKC leaves alone
    "ß": "b", "ɑ": "a", "ƅ": "b", "ꓐ": "B", "ꓮ": "A", "ꓚ": "C", "Ꭺ": "A", "Ᏼ": "B", "Ꮯ": "C",
}  # fmt: skip

# Brackets and angle marks that read as `[`, `]`, `<`, `>` (or doubled ones).
_BRACKETS = {
    "⟦": "[[", "⟧": "]]", "〚": "[[", "〛": "]]", "⁅": "[", "⁆": "]", "【": "[", "】": "]",
    "〖": "[", "〗": "]", "〔": "[", "〕": "]", "〘": "[", "〙": "]", "「": "[", "」": "]",
    "『": "[", "』": "]", "⦋": "[", "⦌": "]", "⦍": "[", "⦎": "]", "⦏": "[", "⦐": "]",
    "❲": "[", "❳": "]", "⸢": "[", "⸣": "]", "⸤": "[", "⸥": "]", "﹇": "[", "﹈": "]",
    "⦃": "{{", "⦄": "}}", "❴": "{", "❵": "}", "⦅": "((", "⦆": "))", "❨": "(", "❩": ")",
    "❪": "(", "❫": ")", "⸨": "((", "⸩": "))", "⁽": "(", "⁾": ")", "₍": "(", "₎": ")",
    "〈": "<", "〉": ">", "⟨": "<", "⟩": ">", "‹": "<", "›": ">", "❮": "<", "❯": ">",
    "❬": "<", "❭": ">", "❰": "<", "❱": ">", "⧼": "<", "⧽": ">", "˂": "<", "˃": ">",
    "《": "<<", "》": ">>", "«": "<<", "»": ">>", "≪": "<<", "≫": ">>", "⟪": "<<", "⟫": ">>",
    "⋘": "<<<", "⋙": ">>>", "⫷": "<<<", "⫸": ">>>",
}  # fmt: skip

# Characters a reader does not see, whatever their Unicode category says.
_ALSO_INVISIBLE = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u180e", "\u034f", "\u17b4", "\u17b5"}

# Escapes that a model may decode while reading: HTML entities, `\uXXXX`, `\[`, `%5B`.
_ESCAPE = re.compile(
    r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?"
    r"|\\u[0-9a-fA-F]{4}|\\u\{[0-9a-fA-F]{1,6}\}|\\U[0-9a-fA-F]{8}"
    r"|\\x[0-9a-fA-F]{2}"
    r"|\\(?=[^\w\s])"
    r"|%(?:5[BbDd]|7[BbDd]|3[CcEe]|28|29|7[Cc])"
)
# A word spelt out letter by letter (`v e r d i c t`, `V.E.R.D.I.C.T`): read as one word.
_LETTER_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][ ._\-*·]){2,}[^\W_](?![^\W_])")


def _tag_to_ascii(ch: str) -> str | None:
    """Unicode tag characters (U+E0020-E007E) spell ASCII invisibly ("ASCII smuggling")."""
    code = ord(ch)
    return chr(code - 0xE0000) if 0xE0020 <= code <= 0xE007E else None


def is_invisible(ch: str) -> bool:
    """Format controls, combining marks, variation selectors, tags and blank fillers."""
    if ch in _ALSO_INVISIBLE:
        return True
    return unicodedata.category(ch) in ("Cf", "Mn", "Me", "Cc") and ch not in "\n\t\r"


def _enclosed_letter(ch: str) -> str | None:
    """Negative circled / squared / regional-indicator letters (🅑 🅱 🇧), which NFKC leaves alone."""
    code = ord(ch)
    for base in (0x1F150, 0x1F170, 0x1F1E6):
        if base <= code < base + 26:
            return chr(ord("A") + code - base)
    return None


@lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    """What one character reads as: '' for invisible ones, else its plain form (maybe several chars)."""
    if (tag := _tag_to_ascii(ch)) is not None:
        return tag
    if is_invisible(ch):
        return ""
    if (letter := _enclosed_letter(ch)) is not None:
        return letter
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        if is_invisible(c):
            continue
        c = _BRACKETS.get(c, _HOMOGLYPHS.get(c, c))
        if c.isspace():
            c = "\n" if c in "\n\r\u2028\u2029\x0b\x0c\x85" else " "
        out.append(c)
    return "".join(out)


def _decode_escape(token: str) -> str:
    if token.startswith("&"):
        decoded = html.unescape(token)
        return token if decoded == token else decoded
    if token == "\\":
        return ""
    if token.startswith("%"):
        return chr(int(token[1:], 16))
    digits = token.strip("\\uUx{}")
    try:
        return chr(int(digits, 16))
    except (ValueError, OverflowError):
        return token


@dataclass(frozen=True)
class Folded:
    """The folded text and, per folded character, the original span [start, end) it came from."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span behind folded characters [start, end)."""
        return self.starts[start], self.ends[end - 1]


# Characters that fold to themselves: printable ASCII and newlines, except the escape introducers.
_PLAIN_RUN = re.compile(r"[\x20-\x24\x27-\x5b\x5d-\x7e\n]+")


def fold(text: str) -> Folded:
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def emit(folded: str, start: int, end: int) -> None:
        for c in folded:
            chars.append(c)
            starts.append(start)
            ends.append(end)

    i = 0
    n = len(text)
    while i < n:
        plain = _PLAIN_RUN.match(text, i)
        if plain:  # the common case, copied in one go
            chars.append(plain.group())
            starts.extend(range(i, plain.end()))
            ends.extend(range(i + 1, plain.end() + 1))
            i = plain.end()
            continue
        ch = text[i]
        if ch in "&\\%":
            m = _ESCAPE.match(text, i)
            if m:
                emit("".join(fold_char(c) for c in _decode_escape(m.group())), i, m.end())
                i = m.end()
                continue
        emit(fold_char(ch), i, i + 1)
        i += 1
    folded = "".join(chars)
    # drop the separators of letter-spaced words
    drop: set[int] = set()
    for m in _LETTER_SPACED.finditer(folded):
        drop.update(range(m.start() + 1, m.end(), 2))
    if drop:
        keep = [k for k in range(len(folded)) if k not in drop]
        folded = "".join(folded[k] for k in keep)
        starts = [starts[k] for k in keep]
        ends = [ends[k] for k in keep]
    return Folded(folded, tuple(starts), tuple(ends))
