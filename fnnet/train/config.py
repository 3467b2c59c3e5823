"""Experiment configs that validate themselves: ``check_config`` and ``require``.

An experiment's ``Config`` is a frozen dataclass whose ``__post_init__`` checks every
value before any compute, so a bad ``--set`` or keyword is one clear error naming the
field, the value and what is allowed, never an XLA failure minutes later::

    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0                           # seed of every random draw
        hidden: tuple[int, ...] = (512, 512)    # widths of the hidden layers
        dropout: float = 0.3                    # dropout rate after each hidden layer
        steps: int = 1000                       # training steps
        log_every: int = 50                     # steps between two logged points

        def __post_init__(self):
            check_config(self, positive=("hidden", "steps", "log_every"),
                         ranges={"dropout": "[0, 1)"})
            require(self, "log_every", self.log_every <= self.steps, f"<= steps ({self.steps})")

``check_config`` first checks every field against its annotation (``int``, ``float``,
``bool``, ``str``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``Optional[X]`` / ``X | None``;
a bool is not an int, an int is a float, a list is not a tuple), then the rules named
in the call. A rule on a tuple field applies to each element; ``None`` (an optional
field left unset) passes every rule. The trailing ``#`` comment of a field is its
one-line doc, which ``fnnet run NAME --help`` prints.

Imports: the standard library only.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import operator
import sys
import types
import typing

__all__ = ["check_config", "require", "field_types", "matches_type", "type_name"]

_NAMESPACE = {"Optional": typing.Optional, "Union": typing.Union, "Tuple": typing.Tuple,
              "List": typing.List, "Any": typing.Any}


def field_types(cls) -> dict[str, object]:
    """The resolved annotation of each field of dataclass ``cls`` (None where it cannot be resolved).

    String annotations (``from __future__ import annotations``) are evaluated in the
    namespace of the class's module plus the ``typing`` names ``Optional``, ``Union``,
    ``Tuple``, ``List`` and ``Any``.
    """
    module = sys.modules.get(cls.__module__)
    namespace = {**_NAMESPACE, **(vars(module) if module is not None else {})}
    out = {}
    for f in dataclasses.fields(cls):
        hint = f.type
        if isinstance(hint, str):
            try:
                hint = eval(hint, namespace)  # noqa: S307 (a dataclass annotation of the project's own file)
            except Exception:  # an annotation naming something the module does not hold
                hint = None
        out[f.name] = hint
    return out


def _is_int(value) -> bool:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def matches_type(value, hint) -> bool:
    """Whether ``value`` is of the annotated type ``hint`` (True for a hint it does not know)."""
    if hint is None or hint is typing.Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return any(matches_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool) or type(value).__name__ == "bool_"
    if hint is int:
        return _is_int(value)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and not type(value).__name__ == "bool_"
    if hint is str:
        return isinstance(value, str)
    if hint is tuple or origin is tuple:
        if not isinstance(value, tuple):
            return False
        if not args:
            return True
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches_type(v, args[0]) for v in value)
        return len(value) == len(args) and all(matches_type(v, a) for v, a in zip(value, args))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def type_name(hint, raw=None) -> str:
    """How a field's type reads in messages: the annotation as written where it is a string."""
    if isinstance(raw, str):
        return raw
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _owner(config) -> str:
    return type(config).__qualname__


def require(config, field: str, ok: bool, expected: str) -> None:
    """Raise ``ValueError("Config: expected FIELD EXPECTED, got VALUE")`` unless ``ok``.

    For the checks that relate two fields (``log_every <= steps``) or that no rule of
    :func:`check_config` expresses.
    """
    if not ok:
        raise ValueError(f"{_owner(config)}: expected {field} {expected}, got {getattr(config, field)!r}")


def _parse_interval(text: str):
    text = text.strip()
    if len(text) < 5 or text[0] not in "[(" or text[-1] not in "])" or "," not in text:
        raise ValueError(f"check_config: expected an interval such as '[0, 1)' or '(0, inf)', got {text!r}")
    lo, hi = (float(part) for part in text[1:-1].split(","))
    return lo, hi, text[0] == "[", text[-1] == "]"


def _in_interval(v, interval) -> bool:
    lo, hi, closed_lo, closed_hi = interval
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v):
        return False
    return (v >= lo if closed_lo else v > lo) and (v <= hi if closed_hi else v < hi)


def _elements(value):
    return value if isinstance(value, tuple) else (value,)


def check_config(config, *, positive=(), nonnegative=(), ranges=None, choices=None, nonempty=()) -> None:
    """Check a dataclass config's fields against their annotations and the given rules.

    Args:
      config: the dataclass instance (call it from ``__post_init__``).
      positive: fields that must be > 0 (every element, for a tuple).
      nonnegative: fields that must be >= 0.
      ranges: ``{field: interval}`` with an interval written ``"[0, 1)"``, ``"(0, 1]"``,
        ``"(0, inf)"``...; brackets include the end, parentheses exclude it.
      choices: ``{field: allowed values}``; a tuple field's every element must be one.
      nonempty: tuple fields that must hold at least one element.

    Raises:
      TypeError: a value is not of its field's annotated type.
      ValueError: a value breaks a rule; the message names the field, the value and
        what is allowed.
    """
    owner = _owner(config)
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = field_types(type(config))
    rules = {}
    for name in positive:
        rules.setdefault(name, []).append(("> 0", _parse_interval("(0, inf)")))
    for name in nonnegative:
        rules.setdefault(name, []).append((">= 0", _parse_interval("[0, inf)")))
    for name, interval in (ranges or {}).items():
        rules.setdefault(name, []).append((f"in {interval}", _parse_interval(interval)))
    named = set(rules) | set(choices or {}) | set(nonempty)
    unknown = sorted(named - set(fields))
    if unknown:
        raise ValueError(f"check_config: {owner} has no field {', '.join(unknown)}; fields: {', '.join(fields)}")

    for name, f in fields.items():
        value = getattr(config, name)
        if not matches_type(value, hints[name]):
            raise TypeError(f"{owner}: expected {name} as {type_name(hints[name], f.type)}, "
                            f"got {value!r} ({type(value).__name__})")
    for name in nonempty:
        value = getattr(config, name)
        if value is not None and len(value) == 0:
            raise ValueError(f"{owner}: expected {name} to hold at least one value, got {value!r}")
    for name, checks in rules.items():
        value = getattr(config, name)
        if value is None:
            continue
        for text, interval in checks:
            bad = [v for v in _elements(value) if not _in_interval(v, interval)]
            if bad:
                what = f"every element of {name}" if isinstance(value, tuple) else name
                raise ValueError(f"{owner}: expected {what} {text}, got {value!r}")
    for name, allowed in (choices or {}).items():
        value = getattr(config, name)
        if value is None:
            continue
        allowed = tuple(allowed)
        bad = [v for v in _elements(value) if v not in allowed]
        if bad:
            what = f"every element of {name}" if isinstance(value, tuple) else name
            raise ValueError(f"{owner}: expected {what} one of {', '.join(map(repr, allowed))}; "
                             f"got {value!r}")
