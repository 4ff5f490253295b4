"""am/validate.py: the pure validators the plan and the config file share."""

import pytest

from am import validate


@pytest.mark.parametrize(
    "value, size",
    [
        ("512m", 512 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1.5g", int(1.5 * 1024**3)),
        ("7000000", 7000000),
    ],
)
def test_memory_accepts(value, size):
    assert validate.memory(value) == size


@pytest.mark.parametrize(
    "value, problem",
    [("0", None), ("-1g", None), ("2x", None), ("", None), (None, None), ("1m", "is too small")],
)
def test_memory_refuses(value, problem):
    with pytest.raises(validate.Invalid) as e:
        validate.memory(value)
    assert e.value.problem == problem and e.value.hint


def test_memory_and_cpus_against_the_host():
    with pytest.raises(validate.Invalid, match="more than this host has \\(1.0g\\)") as e:
        validate.memory("2g", host_memory=1024**3)
    assert e.value.hint == "at most 1.0g"  # what to give instead
    with pytest.raises(validate.Invalid, match="more than this host has \\(2\\)") as e:
        validate.cpus("3", host_cpus=2)
    assert e.value.hint == "at most 2"
    assert validate.cpus("0.5", host_cpus=2) == 0.5


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "x", None])
def test_cpus_refuses(value):
    with pytest.raises(validate.Invalid):
        validate.cpus(value)


@pytest.mark.parametrize(
    "value, ok",
    [("100", 100), (7, 7), ("0", None), (True, None), ("1.5", None), ("-3", None), ("10\n", None)],
)
def test_pids(value, ok):
    if ok is None:
        with pytest.raises(validate.Invalid):
            validate.pids(value)
    else:
        assert validate.pids(value) == ok


def test_names_and_object_ids():
    assert validate.NAME_RE.fullmatch("agent-1.x_y")
    assert not validate.NAME_RE.fullmatch("Agent") and not validate.NAME_RE.fullmatch("-a")
    assert not validate.NAME_RE.fullmatch("a\n")
    assert validate.OID_RE.match("a" * 40) and validate.OID_RE.match("b" * 64)
    assert not validate.OID_RE.match("a" * 39) and not validate.OID_RE.match("A" * 40)
    assert validate.ENV_NAME_RE.fullmatch("_X1") and not validate.ENV_NAME_RE.fullmatch("1X")


def test_imports_nothing_of_am():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(validate))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {m for m in imported if m and m.split(".")[0] == "am"} == {"am.defaults"}
