"""JSON text to Python values through the interpreter's own C scanner (``_json``, the one
``json.loads`` uses), without importing ``json``: ``json.decoder`` imports ``re``, and with it
``enum`` and ``functools``, a fifth of an ``am list``. The values, and the errors
(``json.JSONDecodeError``, a ``ValueError``), are ``json.loads``'s; a document nested too
deeply for the interpreter is a ``ValueError`` too, not a ``RecursionError``."""

_WHITESPACE = " \t\n\r"


class _Settings:
    """What the scanner reads of a ``json.JSONDecoder``: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"),
        "Infinity": float("inf"),
        "NaN": float("nan"),
    }.__getitem__


try:
    from _json import make_scanner

    _scan = make_scanner(_Settings())
except ImportError:  # an interpreter without json's C part
    _scan = None


def loads(text: str | bytes):
    """The value of the JSON document TEXT (bytes: in the encoding json.loads detects)."""
    if isinstance(text, bytes | bytearray):
        if text.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) or b"\0" in text[:4]:
            return _json_loads(text)  # a byte-order mark, UTF-16 or -32: json's detection
        text = text.decode("utf-8", "surrogatepass")  # as json.loads; an error is a ValueError
    if _scan is not None and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except Exception:  # noqa: BLE001 (json's own parse below says what is wrong)
            pass  # the scanner's errors need json.decoder imported: a SystemError without
        else:
            if not text[end:].strip(_WHITESPACE):
                return value
    return _json_loads(text)  # a broken document (rare), a byte-order mark, or no C scanner


def _json_loads(text: str | bytes | bytearray):
    import json

    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
