"""How a model family is declared: the fields of its state row and its parameters.

A :class:`Family` is built by one call per field or parameter, in order (see
:mod:`detectors.kernel`, which declares the seasonal and the ratio family). Each call returns
the offset in the state row (or the slot in the parameter row) that the compiled code reads;
everything else is derived from the same declaration: what a state record writes and how
(:mod:`detectors.state`), the fresh row of a new series, the fleet's array widths
(:mod:`detectors.fleet`), the River detectors' ``__init__`` signature, defaults, validation and
parameter row (:mod:`detectors.univariate`).
"""
from __future__ import annotations

import functools
import inspect
from enum import Enum
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np


class Kind(Enum):
    """How a state record writes a field of a state row."""

    INT = "int"
    BOOL = "bool"
    FLOAT = "float"
    OPTIONAL = "optional float"  # None (NaN in the row) or a number
    PROFILE = "profile"  # a range of the row, written as packed little-endian float64
    CACHE = "cache"  # derived from the rest: not written, reset to its default on load


class Field(NamedTuple):
    """One field of a state row."""

    name: str  # as state records (and their layout digest) name it
    kind: Kind
    offset: int
    size: int
    default: float


class Param(NamedTuple):
    """One parameter of a model family: a keyword of its detector's ``__init__``."""

    name: str
    default: Any
    #: its slot in the parameter row and the value it packs there (from all the parameters)
    slot: int
    pack: Callable[[Mapping[str, Any]], float]
    #: an error message for unusable parameters, or None
    check: Callable[[Mapping[str, Any]], str | None] | None


class Family:
    """The declaration of one model family: its state row and its parameters.

    Fields and parameters are declared in order, one call each, which returns the offset (or
    parameter slot) the compiled code uses; the order of the persisted fields is the order of a
    state record.

    >>> toy = Family("Toy")
    >>> toy.state("_n", Kind.INT), toy.state("_prof", Kind.PROFILE, size=3), toy.cache("dt", -1.0)
    (0, 1, 4)
    >>> toy.width, [f.name for f in toy.persisted], toy.fresh_row().tolist()
    (5, ['_n', '_prof'], [0.0, 0.0, 0.0, 0.0, -1.0])
    >>> toy.param("half_life_s", 60.0, check=lambda p: None if p["half_life_s"] > 0 else "half_life_s > 0")
    0
    >>> toy.configure({"half_life_s": 30}).packed.tolist()
    [30.0]
    >>> toy.configure({"half_life_s": -1})
    Traceback (most recent call last):
    ...
    ValueError: half_life_s > 0
    """

    def __init__(self, name: str):
        self.name = name  # the detector class, as state records name it
        self.fields: list[Field] = []
        self.params: list[Param] = []
        self.width = 0  # floats in a state row
        self.n_packed = 0  # floats in a parameter row

    def extended(self, name: str) -> Family:
        """A new family that starts as this one (the same fields at the same offsets, the same
        parameters in the same slots) and declares more after them: this family's compiled code
        runs unchanged on the new family's rows and parameter rows.

        >>> base = Family("Base")
        >>> base.state("_n", Kind.INT), base.param("half_life_s", 60.0)
        (0, 0)
        >>> more = base.extended("More")
        >>> more.state("_peak", Kind.FLOAT), more.param("quantile", 0.99)
        (1, 1)
        >>> [f.name for f in more.persisted], list(more.signature().parameters)
        (['_n', '_peak'], ['self', 'half_life_s', 'quantile'])
        >>> base.width, base.n_packed
        (1, 1)
        """
        other = Family(name)
        other.fields = list(self.fields)
        other.params = list(self.params)
        other.width = self.width
        other.n_packed = self.n_packed
        return other

    # -- declaring
    def state(self, name: str, kind: Kind, default: float = 0.0, size: int = 1) -> int:
        """A learned field (written to state records); returns its offset in the row."""
        offset = self.width
        self.fields.append(Field(name, kind, offset, size, default))
        self.width += size
        # (derived views are recomputed on next use)
        self.__dict__.pop("persisted", None)
        self.__dict__.pop("record_steps", None)
        return offset

    def cache(self, name: str, default: float) -> int:
        """A value derived from the rest of the state (not written); returns its offset."""
        return self.state(name, Kind.CACHE, default)

    def param(self, name: str, default: Any, pack: Callable[[Mapping[str, Any]], float] | None = None,
              check: Callable[[Mapping[str, Any]], str | None] | None = None) -> int:
        """A parameter and the slot of the parameter row it packs into (its value as a float,
        or ``pack(parameters)``); ``check(parameters)`` returns an error message or None."""
        slot = self._slot()
        self.params.append(Param(name, default, slot, pack or (lambda p: float(p[name])), check))
        return slot

    def derived(self, pack: Callable[[Mapping[str, Any]], float]) -> int:
        """A slot of the parameter row computed from the parameters (no keyword of its own)."""
        slot = self._slot()
        self.params.append(Param("", None, slot, pack, None))
        return slot

    def _slot(self) -> int:
        self.n_packed += 1
        self.__dict__.pop("keywords", None)
        return self.n_packed - 1

    # -- using
    @functools.cached_property
    def persisted(self) -> tuple[Field, ...]:
        """The fields a state record writes, in its order."""
        return tuple(f for f in self.fields if f.kind is not Kind.CACHE)

    @functools.cached_property
    def record_steps(self) -> tuple[tuple[Kind, int, int], ...]:
        """The persisted fields as steps ``(kind, start, end)`` of the row, in record order, with
        each run of adjacent float fields one step (a record writes it as one list slice).

        >>> toy = Family("Toy")
        >>> for name in ("_a", "_b"):
        ...     _ = toy.state(name, Kind.FLOAT)
        >>> _ = toy.state("_n", Kind.INT), toy.state("_p", Kind.PROFILE, size=2), toy.state("_c", Kind.FLOAT)
        >>> [(k.name, a, b) for k, a, b in toy.record_steps]
        [('FLOAT', 0, 2), ('INT', 2, 3), ('PROFILE', 3, 5), ('FLOAT', 5, 6)]
        """
        steps: list[tuple[Kind, int, int]] = []
        for f in self.persisted:
            end = f.offset + f.size
            if f.kind is Kind.FLOAT and steps and steps[-1][0] is Kind.FLOAT and steps[-1][2] == f.offset:
                steps[-1] = (Kind.FLOAT, steps[-1][1], end)
            else:
                steps.append((f.kind, f.offset, end))
        return tuple(steps)

    @functools.cached_property
    def keywords(self) -> tuple[Param, ...]:
        """The parameters with a keyword, in ``__init__`` order."""
        return tuple(p for p in self.params if p.name)

    def fresh_row(self) -> np.ndarray:
        """The state row of a series that has seen nothing."""
        row = np.empty(self.width)
        for f in self.fields:
            row[f.offset:f.offset + f.size] = f.default
        return row

    def signature(self) -> inspect.Signature:
        """The detector's ``__init__(self, <keywords with defaults>)``."""
        kw = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature([inspect.Parameter("self", kw)]
                                 + [inspect.Parameter(p.name, kw, default=p.default) for p in self.keywords])

    def configure(self, given: Mapping[str, Any]) -> Configured:
        """Parameters with defaults, checked (ValueError), and their parameter row."""
        return _configure(self, tuple(sorted(given.items())))


class Configured(NamedTuple):
    """A family's parameters with their defaults, and the parameter row they pack into (shared
    by every detector configured alike: the compiled code never writes it)."""

    params: Mapping[str, Any]
    packed: np.ndarray


@functools.lru_cache(maxsize=1024)  # every customer's models of one configuration share one
def _configure(family: Family, given: tuple[tuple[str, Any], ...]) -> Configured:
    params = {p.name: p.default for p in family.keywords}
    unknown = [k for k, _ in given if k not in params]
    if unknown:
        raise TypeError(f"{family.name}.__init__() got an unexpected keyword argument {unknown[0]!r}")
    params.update(given)
    for p in family.params:
        problem = p.check(params) if p.check else None
        if problem:
            raise ValueError(problem)
    packed = np.zeros(family.n_packed)
    for p in family.params:
        packed[p.slot] = p.pack(params)
    return Configured(MappingProxyType(params), packed)
