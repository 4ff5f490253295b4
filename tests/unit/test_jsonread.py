"""am/jsonread.py: json.loads's values and errors, without importing json first.

Each document is read in a fresh interpreter, where json is not imported: the C scanner's own
errors need ``json.decoder`` there, and without it they were a SystemError (a traceback in
``am list`` over a torn state file)."""

import json
import subprocess
import sys

import pytest

DOCUMENTS = [
    '{"a": 1}',
    ' [1, 2.5, "x", null, true, false] ',
    '{"a": 1}\n\n',
    "NaN",
    "[Infinity, -Infinity]",
    '"\\ud800"',
    '{"a": 1, "a": 2}',
    "1e400",
    "-0",
    # broken ones: json's own error, never a crash
    "",
    " ",
    '{"a": 1} x',
    '{"a": "\x01"}',
    "\ufeff{}",
    '{"a":',
    '{"a": 1',
    "[1,]",
    "[1 2]",
    '"\\x"',
    "123abc",
    "\ufeff[1]",
]

ENCODED = [
    "\ufeff[1]".encode(),  # json.loads takes bytes with a BOM as utf-8-sig
    '["\u00e9"]'.encode("utf-16"),
    '["x"]'.encode("utf-32-le"),
    b'["\xed\xa0\x80"]',  # an encoded surrogate: surrogatepass
    b'["\xff"]',  # not UTF-8
]

READ = """
import sys
from am import jsonread
try:
    print(repr(("ok", jsonread.loads(sys.stdin.buffer.read()))))
except ValueError as e:
    print(repr(("error", str(e))))
"""


def read_fresh(document: str) -> str:
    res = subprocess.run(
        [sys.executable, "-c", READ], input=document.encode(), capture_output=True, timeout=60
    )
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode().strip()


def json_loads(document: str) -> str:
    try:
        return repr(("ok", json.loads(document.encode())))
    except ValueError as e:
        return repr(("error", str(e)))


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_value_or_error_is_json_loads_own(document):
    assert read_fresh(document) == json_loads(document)


@pytest.mark.parametrize("encoded", ENCODED)
def test_bytes_are_decoded_as_json_loads_decodes_them(encoded):
    res = subprocess.run(
        [sys.executable, "-c", READ], input=encoded, capture_output=True, timeout=60
    )
    try:
        expected = repr(("ok", json.loads(encoded)))
    except ValueError as e:
        expected = repr(("error", str(e)))
    assert res.stdout.decode().strip() == expected, res.stderr.decode()


def test_nesting_too_deep_is_a_value_error_not_a_crash():
    assert read_fresh("[" * 100_000) == repr(("error", "JSON nested too deeply"))


def test_the_scanner_alone_fails_without_json_imported():
    """Control: what the fallback is for. The bare C scanner on a broken document, json not
    imported, raises a SystemError (or, on another interpreter, at least no JSON error)."""
    probe = (
        "from am import jsonread\n"
        "try:\n    jsonread._scan('[1 2]', 0)\n"
        "except ValueError:\n    print('value error')\n"
        "except Exception as e:\n    print(type(e).__name__)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.stdout.strip() == "SystemError", res.stdout + res.stderr
