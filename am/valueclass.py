"""Value classes without the ``dataclasses`` module: ``@value_class`` gives a class of annotated
fields an ``__init__`` (by position or name, with defaults), ``__repr__`` and ``__eq__``;
frozen (the default) also ``__hash__`` and no assignment. ``field``, ``replace``, ``fields``
and ``asdict`` work as their namesakes in ``dataclasses`` do.

Why not ``dataclasses``: importing it imports ``inspect`` (with ``dis``, ``ast`` and
``tokenize``), and it compiles new functions for every class. Both together were about 15 ms
of each ``am spawn``'s start, in a command whose own Python work is about 60 ms
(docs/performance.md). Here each method is one function shared by all classes. Type checkers
read these classes as dataclasses (PEP 681's ``dataclass_transform``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, dataclass_transform
else:

    def dataclass_transform(**_):
        return lambda f: f


try:
    import annotationlib as _annotationlib  # type: ignore[import-not-found]  # Python 3.14 on
except ImportError:
    _annotationlib = None


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # no default


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen value."""


class Field:
    """One field: its name, and its default or the factory of a fresh default."""

    __slots__ = ("name", "default", "default_factory", "repr")

    def __init__(self, default=MISSING, default_factory=MISSING, repr: bool = True):
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("a field has a default or a default_factory, not both")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.repr = repr

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(
    *, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING, repr: bool = True
) -> Any:
    """A field's default (or the factory of a new one for each value), and whether
    ``__repr__`` shows it."""
    return Field(default, default_factory, repr)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value_class(cls: Any = None, /, *, frozen: bool = True) -> Any:
    """The class decorator: ``@value_class`` (frozen), or ``@value_class(frozen=False)``."""

    def make(c: type) -> type:
        return _make(c, frozen)

    return make if cls is None else make(cls)


def _annotated(cls: type) -> list[str]:
    """The names CLS itself annotates, in order. Python 3.14 evaluates annotations lazily
    and keeps them out of the class's namespace unless its module asks for strings
    (``from __future__ import annotations``); ``annotationlib`` reads them either way."""
    if _annotationlib is None:
        return list(cls.__dict__.get("__annotations__", {}))
    fmt = _annotationlib.Format.FORWARDREF
    return list(_annotationlib.get_annotations(cls, format=fmt))


def _make(cls: type, frozen: bool) -> type:
    own = []
    for name in _annotated(cls):
        got = cls.__dict__.get(name, MISSING)
        if isinstance(got, list | dict | set):
            raise ValueError(f"mutable default for field {name!r}: use default_factory")
        f = got if isinstance(got, Field) else Field(default=got)
        f.name = name
        if isinstance(got, Field):
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        own.append(f)
    inherited = getattr(cls, "__value_fields__", ())  # a value class's subclass: its fields
    names = {f.name for f in own}
    flds = tuple([f for f in inherited if f.name not in names] + own)
    defaulted = False
    for f in flds:
        if f.default is not MISSING or f.default_factory is not MISSING:
            defaulted = True
        elif defaulted:
            raise TypeError(f"non-default field {f.name!r} follows a default field")
    if not flds:
        raise TypeError(f"value class {cls.__name__} has no fields")
    cls.__value_fields__ = flds  # type: ignore[attr-defined]
    methods: dict[str, Any] = {"__init__": _init, "__repr__": _repr, "__eq__": _eq}
    if frozen:
        methods.update(__setattr__=_frozen_set, __delattr__=_frozen_del, __hash__=_hash)
    elif "__hash__" not in cls.__dict__:
        methods["__hash__"] = None  # mutable and compared by value: unhashable, as dataclasses
    for name, fn in methods.items():
        if name not in cls.__dict__ or name == "__hash__" and cls.__dict__[name] is None:
            setattr(cls, name, fn)
    return cls


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    flds = type(self).__value_fields__
    name = type(self).__name__
    if len(args) > len(flds):
        raise TypeError(f"{name}() takes {len(flds)} positional arguments but {len(args)} given")
    put = object.__setattr__
    for i, f in enumerate(flds):
        if i < len(args):
            if f.name in kwargs:
                raise TypeError(f"{name}() got multiple values for argument {f.name!r}")
            v = args[i]
        elif f.name in kwargs:
            v = kwargs.pop(f.name)
        elif f.default_factory is not MISSING:
            v = f.default_factory()
        elif f.default is not MISSING:
            v = f.default
        else:
            raise TypeError(f"{name}() missing required argument: {f.name!r}")
        put(self, f.name, v)
    if kwargs:
        raise TypeError(f"{name}() got an unexpected keyword argument {next(iter(kwargs))!r}")


def _values(obj: Any) -> tuple:
    return tuple(getattr(obj, f.name) for f in type(obj).__value_fields__)


def _repr(self: Any) -> str:
    shown = ", ".join(
        f"{f.name}={getattr(self, f.name)!r}" for f in type(self).__value_fields__ if f.repr
    )
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_set(self: Any, name: str, _: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_del(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def is_value(obj: object) -> bool:
    """Whether OBJ is a value class or one of its values."""
    return hasattr(obj, "__value_fields__")


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a value class, or of its value OBJ, in their order."""
    got = getattr(obj, "__value_fields__", None)
    if got is None:
        raise TypeError(f"{obj!r} is not a value class or value")
    return got


def replace(obj: Any, /, **changes: Any) -> Any:
    """A new value of OBJ's class: OBJ's fields, with CHANGES."""
    return type(obj)(**{f.name: getattr(obj, f.name) for f in fields(obj)} | changes)


def asdict(obj: Any) -> dict[str, Any]:
    """OBJ's fields as a dict; values that are values, lists, tuples or dicts converted in
    turn (new lists and dicts, so the result shares none with OBJ)."""
    if isinstance(obj, type) or not is_value(obj):
        raise TypeError("asdict() takes a value")
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def _plain(v: Any) -> Any:
    if is_value(v) and not isinstance(v, type):
        return asdict(v)
    if isinstance(v, list | tuple):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    return v
