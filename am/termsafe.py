"""Text for a terminal: control characters that agent-controlled text may carry, escaped.

An agent chooses much of what am prints: host names in the proxy's log, branch names, file
content in ``am diff``, git configuration keys in a refusal. A terminal obeys escape sequences
in it (retitle the window, clear the screen, move the cursor over a line, write the clipboard
with OSC 52), so everything am writes as text goes through ``escape``: C0 and C1 controls
(but ``\\n`` and ``\\t``), DEL, Unicode's bidirectional overrides (which reorder what is shown)
and undecodable bytes become visible ``\\xNN`` / ``\\uNNNN`` text. ``main`` installs
``Escaping`` over stdout and stderr; only the agent's own terminal stream (``am logs``,
``am attach``, like ``docker logs``) and bytes bound for a pipe (``am diff | git apply``) are
written raw, through ``sys.stdout.buffer``.
"""

import sys

# C0 but tab and newline; DEL and C1; bidi marks, embeddings, overrides and isolates;
# surrogates (undecodable bytes under surrogateescape, or lone halves).
UNSAFE = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
_unsafe = None  # UNSAFE compiled, at the first text that needs it


def _visible(m) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{c - 0xDC00:02x}"
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def plain(text: str) -> bool:
    """Whether TEXT is printable ASCII, tabs and newlines: nothing in it to escape. ``re``
    costs am list a fifth of its time, and its table is such text."""
    return text.isascii() and text.replace("\n", " ").replace("\t", " ").isprintable()


def escape(text: str) -> str:
    """TEXT with every unsafe character written out as an escape."""
    global _unsafe
    if plain(text):
        return text
    if _unsafe is None:
        import re

        _unsafe = re.compile(UNSAFE)
    return _unsafe.sub(_visible, text)


class Escaping:
    """A text stream whose ``write`` escapes (everything else, ``buffer`` included, is the
    wrapped stream's)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(escape(text))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def install() -> None:
    """Escape everything printed on stdout and stderr from here on."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, Escaping):
            setattr(sys, name, Escaping(stream))


def control(sequence: str) -> None:
    """Write one of am's own control sequences (never agent text) to stdout, as is."""
    stream = sys.stdout
    (stream._stream if isinstance(stream, Escaping) else stream).write(sequence)


def write_untrusted(data: bytes | str) -> None:
    """Agent-made content (a patch): escaped on a terminal, the exact bytes into a pipe."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if sys.stdout.isatty():
        sys.stdout.write(escape(data.decode("utf-8", "surrogateescape")))
        sys.stdout.flush()
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
