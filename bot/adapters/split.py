"""Cutting one message into parts that each fit a platform's byte limit.

Parts break between lines. A fenced code block that straddles a break is closed at the end of
one part and reopened at the start of the next, so every part renders on its own. A line longer
than a part is cut where it does least harm: after a blank, else between inline constructs
(``**bold**``, ``[text](url)``, ``<font …>…</font>``, ``<@userid>``, `` `code` ``), else between
characters; a construct longer than a whole part is the only thing ever cut inside.

Limits count UTF-8 bytes, and cuts fall between characters, never inside one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MIN_LIMIT", "Part", "plan_parts", "split_message", "split_to_fit"]

MIN_LIMIT = 64  # room for a marker, a reopened fence and its closing line, and some text

_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
_INLINE = re.compile(
    r"`[^`\n]+`"
    r"|\*\*(?:(?!\*\*).)+?\*\*"
    r"|!?\[[^\]\n]*\]\([^)\n]*\)"
    r"|<font\b[^>\n]*>.*?</font>"
    r"|<@[^>\s]+>"
)
_SHORT_INFO = 24  # bytes of a fence's info string ("python") worth repeating when reopening


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class _Fence:
    char: str
    length: int
    info: str

    @property
    def reopen(self) -> str:
        info = self.info.strip() if _size(self.info.strip()) <= _SHORT_INFO else ""
        if self.char == "`" and "`" in info:
            info = ""  # a backtick in a backtick fence's info string unmakes the fence
        return self.char * self.length + info + "\n"

    def close(self, after: str) -> str:
        return ("" if after.endswith("\n") else "\n") + self.char * self.length


def _step(fence: _Fence | None, line: str) -> _Fence | None:
    """The fence state after ``line``, read as a line on its own."""
    match = _FENCE.fullmatch(line.rstrip("\n"))
    if match is None:
        return fence
    run, rest = match.group(2), match.group(3)
    if fence is None:
        if run[0] == "`" and "`" in rest:
            return None
        return _Fence(run[0], len(run), rest)
    closes = run[0] == fence.char and len(run) >= fence.length and not rest.strip()
    return None if closes else fence


@dataclass(frozen=True, slots=True)
class Part:
    """One part: ``body`` is an exact slice of the input; ``reopen``/``close`` are added lines."""

    body: str
    reopen: str = ""
    close: str = ""

    def render(self, marker: str = "") -> str:
        text = (self.reopen + self.body + self.close).rstrip("\n")
        return f"{text}\n{marker}" if marker else text


def _cut(line: str, room: int, fits: Callable[[str], bool]) -> int:
    """Where to cut ``line`` so that its head ``fits``; ``room`` bounds the head's bytes.

    Best is right after a blank (if that keeps at least three quarters of the head), then
    the longest head that ends outside an inline construct, then any character boundary.
    """
    inside = bytearray(len(line) + 1)
    for match in _INLINE.finditer(line):
        inside[match.start() + 1 : match.end()] = b"\x01" * (match.end() - match.start() - 1)
    end, used = 0, 0
    for ch in line[:-1]:  # the longest head within ``room``, always leaving a tail
        used += _size(ch)
        if used > room:
            break
        end += 1
    safe = [i for i in range(end, 0, -1) if not inside[i] and fits(line[:i])][:1]
    if safe:
        best = safe[0]
        for i in range(best, best * 3 // 4, -1):
            if line[i - 1].isspace() and not inside[i] and fits(line[:i]):
                return i
        return best
    # A construct longer than a whole part: cut between characters.
    return next((i for i in range(end, 0, -1) if fits(line[:i])), 1)


def plan_parts(text: str, limit_bytes: int, *, markdown: bool = True) -> list[Part]:
    """Lay ``text`` out in parts whose ``render()`` is at most ``limit_bytes`` long.

    ``"".join(p.body for p in parts) == text`` always holds. With ``markdown=False`` lines are
    plain text: no fences are tracked and nothing is added.
    """
    if limit_bytes < MIN_LIMIT // 2:
        raise ValueError(f"limit of {limit_bytes} bytes is too small to split into")
    parts: list[Part] = []
    pending = _LINE.findall(text)
    pending.reverse()  # a stack: a cut line pushes its tail back
    fence: _Fence | None = None
    reopen, body, used = "", "", 0  # used: bytes of reopen + body

    def state_after(chunk: str) -> _Fence | None:
        return _step(fence, chunk) if markdown else None

    def size_with(chunk: str) -> int:
        after = state_after(chunk)
        tail = after.close(body + chunk) if after else ""
        return used + _size(chunk) + _size(tail)

    def finish() -> None:
        nonlocal body, reopen, used
        parts.append(Part(body, reopen, fence.close(body) if fence else ""))
        body, reopen = "", fence.reopen if fence else ""
        used = _size(reopen)

    while pending:
        line = pending.pop()
        if size_with(line) <= limit_bytes:
            body, used, fence = body + line, used + _size(line), state_after(line)
            continue
        if body:  # this part is full; the line starts the next one
            finish()
            pending.append(line)
            continue
        if fence and size_with(line[:1]) > limit_bytes:
            # So long a fence leaves no room for text: reopen with the shortest one instead.
            fence = _Fence(fence.char, 3, "")
            reopen = fence.reopen
            used = _size(reopen)
        cut = _cut(line, limit_bytes - used, lambda head: size_with(head) <= limit_bytes)
        pending.append(line[cut:])
        body, used, fence = line[:cut], used + _size(line[:cut]), state_after(line[:cut])
        finish()
    if body:
        finish()
    return parts


def _marker(index: int, total: int) -> str:
    return f"（{index}/{total}）"


def split_message(
    text: str, limit_bytes: int, *, numbered: bool = False, markdown: bool = True
) -> list[str]:
    """``text`` in ordered parts of at most ``limit_bytes`` UTF-8 bytes each.

    With ``numbered`` every part of a multi-part message ends with a line like ``（1/3）``,
    whose bytes count against the limit. Parts that would render blank are dropped.
    """
    if limit_bytes < MIN_LIMIT:
        raise ValueError(f"limit of {limit_bytes} bytes is below {MIN_LIMIT}")
    parts = plan_parts(text, limit_bytes, markdown=markdown)
    if not numbered or len(parts) <= 1:
        return [r for p in parts if (r := p.render()).strip()]
    digits = 1
    while True:  # the marker's width depends on the count it reports
        reserve = _size("\n" + _marker(10**digits - 1, 10**digits - 1))
        parts = plan_parts(text, limit_bytes - reserve, markdown=markdown)
        if len(parts) < 10**digits:
            break
        digits += 1
    kept = [p for p in parts if p.render().strip()]
    return [p.render(_marker(i, len(kept))) for i, p in enumerate(kept, 1)]


def split_to_fit(
    text: str,
    max_size: int,
    measure: Callable[[str], int],
    *,
    numbered: bool = True,
    markdown: bool = True,
) -> list[str]:
    """Split so that ``measure(part) <= max_size`` for every part.

    For limits on a wrapper rather than on the text itself, e.g. a JSON body in which quotes
    and newlines grow when escaped. Raises ValueError when no part size can satisfy it.
    """
    limit = max_size - measure("")
    while limit >= MIN_LIMIT:
        parts = split_message(text, limit, numbered=numbered, markdown=markdown)
        worst = max((measure(p) for p in parts), default=0)
        if worst <= max_size:
            return parts
        limit -= max(worst - max_size, 1)
    raise ValueError("the message cannot be split to fit its wrapper")
