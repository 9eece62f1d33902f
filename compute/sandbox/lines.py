"""Turns a child's raw output bytes into log lines safe to store and show.

Binary is escaped (never a decode error), terminal escapes and control characters other than tab
are dropped, very long lines are cut without ever holding more than one line's worth of bytes,
and secrets are masked.
"""

import re

# CSI and OSC terminal sequences first (so no "[31m" is left behind), then any other control char.
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|[\x00-\x08\x0a-\x1f\x7f-\x9f]")
MASK = "***"


def clean(raw: bytes, secrets: tuple[str, ...] = ()) -> str:
    text = ESCAPES.sub("", raw.decode("utf-8", errors="backslashreplace"))
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class LineSplitter:
    """Feed it chunks; it returns finished lines. flush() gives the partial last line."""

    def __init__(self, line_chars: int, secrets: list[str] | tuple[str, ...] = ()):
        self.line_chars = line_chars
        # Longest first, so a secret that contains another is masked whole; empty ones would mask everything.
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        # A line's bytes beyond this are counted, not kept (4 bytes per char at most, plus room for a secret).
        self.keep_bytes = 4 * line_chars + 4 * max((len(s) for s in self.secrets), default=0)
        self.head = bytearray()
        self.dropped = 0  # chars of the current line not kept

    def feed(self, chunk: bytes) -> list[str]:
        lines = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._keep(chunk[start:])
                return lines
            self._keep(chunk[start:end])
            lines.append(self._finish())
            start = end + 1

    def flush(self) -> list[str]:
        if not self.head and not self.dropped:
            return []
        return [self._finish()]

    def _keep(self, part: bytes) -> None:
        room = self.keep_bytes - len(self.head)
        if room > 0:
            self.head += part[:room]
            part = part[room:]
        if part:
            self.dropped += len(part.decode("utf-8", errors="replace"))

    def _finish(self) -> str:
        text = clean(bytes(self.head), self.secrets)
        cut = self.dropped + max(0, len(text) - self.line_chars)
        self.head.clear()
        self.dropped = 0
        if cut:
            return f"{text[: self.line_chars]}… [cut {cut} chars]"
        return text
