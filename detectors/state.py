"""A safe, versioned format for the learned state of customers: msgpack data, never code.

A customer's state is what :class:`~detectors.engine.Engine` keeps for it: one model per
signal, the alert lifecycle (:class:`~detectors.alerting.Tracker` and its open
:class:`~detectors.alerting.Incident`), the last event time and interval. Only the *learned*
state is written. Hyper-parameters are not: on load the models are rebuilt from the
configuration and the learned values are set on them, so a record written under other model
settings is refused (the model fingerprint in the header does not match) instead of silently
mixing two configurations.

What is written is declared next to where it is initialised: every detector class lists its
learned attributes in a ``_STATE`` tuple (and its derived caches, which are *not* written, in
``_DERIVED``); the lifecycle dataclasses are written field by field from their annotations. The
codec is generic over those declarations and writes each value by its type:

=====================  ====================================================
Python value           msgpack
=====================  ====================================================
None, bool, int, str   nil, bool, int, str
float                  float64 (bit-exact)
``array('d')``         bin: packed little-endian float64
list / tuple           array of the above (at most :data:`MAX_ITEMS`)
=====================  ====================================================

On load every value is checked against the freshly built model: same type (a ``None`` slot
takes a number), arrays of the same length, finite floats. Anything wrong raises
:class:`StateError` -- a ``ValueError`` with a message that says what -- never another
exception, and nothing in a record is ever executed.

A *layout* digest (the signal -> class -> ``_STATE`` declarations and the lifecycle fields) is
written too: a state written by a Lookout whose models keep other fields is refused as well.

Formats
-------
One customer (``Engine.dump_customer``; self-describing, validated alone)::

    b"LKSR" + msgpack [version, model fingerprint, layout, customer]

A file of many (``Engine.dump_all``, the data-dir checkpoint and ``--initial-state``)::

    b"LKSF" + msgpack [version, model fingerprint, layout, count]
            + count x msgpack [customer id, customer]

where ``customer`` is ``[last_ts, interval_s, [model state, ...], tracker]``.

>>> from detectors.signals import build_models
>>> from detectors.config import ModelConfig
>>> det = build_models(ModelConfig())["requests"]
>>> for i in range(20):
...     _ = det.step(300.0 * i, 1000.0 + i, None)
>>> copy = build_models(ModelConfig())["requests"]
>>> set_model_state(copy, model_state(det))
>>> copy.step(6000.0, 900.0, None) == det.step(6000.0, 900.0, None)
True
>>> set_model_state(copy, ["not", "a", "state"])
Traceback (most recent call last):
...
detectors.state.StateError: SeasonalDetector: 3 state values, expected 17
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from array import array
from typing import Any, Callable, Iterable, Iterator, Mapping

import msgpack

from .alerting import Finding, Incident, Tracker
from .events import CUSTOMER_ID_RE
from .gcpause import cyclic_gc_paused
from .signals import SIGNALS
from .univariate import Assessment

#: version of the container format (bump on any incompatible change of this module)
FORMAT_VERSION = 1
RECORD_MAGIC = b"LKSR"
FILE_MAGIC = b"LKSF"
#: bounds that keep a hostile record from costing memory or time
MAX_RECORD_BYTES = 1 << 20
MAX_ITEMS = 4096
MAX_STR = 256
MAX_DOUBLES = 1 << 16
#: what pickles start with (protocol 2+): named in the error for old checkpoints
_PICKLE_PREFIX = b"\x80"
_BIG_ENDIAN = sys.byteorder == "big"


class StateError(ValueError):
    """A state record or file that cannot be used (garbage, other version, other settings)."""


# -- values ---------------------------------------------------------------------------------
def _enc(v: Any, where: str, depth: int = 0) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, array):
        if v.typecode != "d":
            raise StateError(f"{where}: only array('d') is supported, got array({v.typecode!r})")
        if _BIG_ENDIAN:
            v = array("d", v)
            v.byteswap()
        return v.tobytes()
    if isinstance(v, (list, tuple)) and depth == 0:
        return [_enc(x, where, 1) for x in v]
    raise StateError(f"{where}: no state codec for {type(v).__name__}")


def _doubles(raw: bytes, where: str, n: int | None) -> array:
    if len(raw) % 8 or (n is not None and len(raw) != 8 * n) or len(raw) > 8 * MAX_DOUBLES:
        want = f"{n} doubles" if n is not None else "a whole number of doubles"
        raise StateError(f"{where}: array of {len(raw)} bytes, expected {want}")
    out = array("d")
    out.frombytes(raw)
    if _BIG_ENDIAN:
        out.byteswap()
    if not math.isfinite(sum(out)):  # fast path; a sum can overflow, so look closer
        for x in out:
            if not math.isfinite(x):
                raise StateError(f"{where}: non-finite value in array")
    return out


def _scalar(v: Any, where: str) -> Any:
    """Any scalar the encoder writes (for list items and ``None`` slots)."""
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise StateError(f"{where}: non-finite float {v!r}")
        return v
    if isinstance(v, str):
        if len(v) > MAX_STR:
            raise StateError(f"{where}: string of {len(v)} chars (max {MAX_STR})")
        return v
    if isinstance(v, bytes):
        return _doubles(v, where, None)
    raise StateError(f"{where}: unexpected {type(v).__name__}")


_isfinite = math.isfinite


def _check_bool(v: Any, where: str) -> bool:
    if type(v) is not bool:
        raise StateError(f"{where}: expected bool, got {type(v).__name__}")
    return v


def _check_int(v: Any, where: str) -> int:
    if type(v) is not int:
        raise StateError(f"{where}: expected int, got {type(v).__name__}")
    return v


def _check_float(v: Any, where: str) -> float:
    if type(v) is float and _isfinite(v):
        return v
    if type(v) is int:
        return float(v)
    raise StateError(f"{where}: expected a finite float, got {v!r}"[:200])


def _check_optional_number(v: Any, where: str) -> Any:
    if v is None or (type(v) in (float, int) and _isfinite(v)):
        return v
    raise StateError(f"{where}: expected None or a finite number, got {v!r}"[:200])


def _check_str(v: Any, where: str) -> str:
    if not isinstance(v, str) or len(v) > MAX_STR:
        raise StateError(f"{where}: expected a string of at most {MAX_STR} chars")
    return v


def _doubles_checker(n: int) -> Callable[[Any, str], Any]:
    def check(v: Any, where: str) -> array:
        if not isinstance(v, bytes):
            raise StateError(f"{where}: expected packed doubles, got {type(v).__name__}")
        return _doubles(v, where, n)

    return check


def _list_checker(kind: type) -> Callable[[Any, str], Any]:
    def check(v: Any, where: str) -> Any:
        if not isinstance(v, list) or len(v) > MAX_ITEMS:
            raise StateError(f"{where}: expected a list of at most {MAX_ITEMS} items")
        items = [_scalar(x, f"{where}[{k}]") for k, x in enumerate(v)]
        return tuple(items) if kind is tuple else items

    return check


def _checker(fresh: Any) -> Callable[[Any, str], Any]:
    """A validator for the values of a slot whose freshly built value is ``fresh``.

    It returns the decoded value or raises :class:`StateError`: same type (a ``None`` slot takes
    ``None`` or a number), arrays of the same length, finite floats, bounded lists.
    """
    if isinstance(fresh, bool):
        return _check_bool
    if isinstance(fresh, int):
        return _check_int
    if isinstance(fresh, float):
        return _check_float
    if fresh is None:  # an optional number (a timestamp not seen yet, ...)
        return _check_optional_number
    if isinstance(fresh, str):
        return _check_str
    if isinstance(fresh, array):
        return _doubles_checker(len(fresh))
    if isinstance(fresh, (list, tuple)):
        return _list_checker(type(fresh))
    raise StateError(f"no state codec for {type(fresh).__name__}")


def _like(fresh: Any, v: Any, where: str) -> Any:
    """``v`` decoded and checked against the value a freshly built model has in that slot."""
    try:
        check = _checker(fresh)
    except StateError as exc:
        raise StateError(f"{where}: {exc}") from None
    return check(v, where)


# -- models -----------------------------------------------------------------------------------
def state_names(model: Any) -> tuple[str, ...]:
    """The learned attributes of ``model`` (its class's ``_STATE``)."""
    cls = type(model)
    names = _NAMES.get(cls)
    if names is None:
        names = getattr(cls, "_STATE", None)
        if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
            raise StateError(f"{cls.__name__} declares no _STATE tuple of attribute names")
        _NAMES[cls] = names
    return names


_NAMES: dict[type, tuple[str, ...]] = {}


def model_state(model: Any) -> list:
    """The learned state of one detector, as msgpack-ready values (``_STATE`` order)."""
    cls = type(model).__name__
    return [_enc(getattr(model, a), f"{cls}.{a}") for a in state_names(model)]


def set_model_state(model: Any, values: Any) -> None:
    """Set the learned state on a detector built with the right hyper-parameters.

    Every value is validated against the detector's current (fresh) one before anything is
    set, so a bad record leaves ``model`` untouched.
    """
    names = state_names(model)
    cls = type(model).__name__
    if not isinstance(values, list) or len(values) != len(names):
        n = len(values) if isinstance(values, list) else type(values).__name__
        raise StateError(f"{cls}: {n} state values, expected {len(names)}")
    decoded = [_like(getattr(model, a), v, f"{cls}.{a}") for a, v in zip(names, values)]
    for a, v in zip(names, decoded):
        setattr(model, a, v)


# -- lifecycle (alerting) ---------------------------------------------------------------------
def _num(v: Any, where: str, finite: bool = True) -> float:
    if type(v) not in (float, int) or (finite and not math.isfinite(v)):
        raise StateError(f"{where}: expected a {'finite ' if finite else ''}number, got {v!r}"[:200])
    return float(v)


def _enc_assessment(a: Assessment, where: str) -> list:
    return list(a)


def _dec_assessment(v: Any, where: str) -> Assessment:
    n = len(_ASSESSMENT)
    if not isinstance(v, list) or len(v) != n:
        raise StateError(f"{where}: expected {n} assessment values")
    return Assessment(*(dec(x, f"{where}.{name}") for (name, dec), x in zip(_ASSESSMENT, v)))


def _num_or_nan(v: Any, where: str) -> float:
    return _num(v, where, finite=False)


def _or_none(inner: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """A decoder that also accepts ``None`` (for ``X | None`` fields)."""
    def dec(v: Any, where: str) -> Any:
        return None if v is None else inner(v, where)

    return dec


def _assessment_fields() -> list[tuple[str, Callable]]:
    """A decoder per :class:`Assessment` field, from its annotation."""
    out = []
    for name in Assessment._fields:
        ann = Assessment.__annotations__.get(name)
        ann = str(getattr(ann, "__forward_arg__", ann))  # NamedTuple keeps string annotations as ForwardRef
        base = ann.removesuffix(" | None")
        dec: Callable[[Any, str], Any]
        if base == "float":  # output values (observed, expected, band): NaN is legitimate there
            dec = _num_or_nan
        elif base in ("int", "str", "bool"):
            dec = _scalar_codec({"int": int, "str": str, "bool": bool}[base])[1]
        else:
            raise StateError(f"no state codec for Assessment.{name}: {ann}")
        out.append((name, _or_none(dec) if base != ann else dec))
    return out


def _dec_signal(v: Any, where: str) -> str:
    if v not in SIGNALS:
        raise StateError(f"{where}: unknown signal {v!r}"[:200])
    return v


def _enc_recent(v: list, where: str) -> list:
    return [[_enc(ts, where), [_enc_dc(f, f"{where}.finding") for f in fs]] for ts, fs in v]


def _dec_recent(v: Any, where: str) -> list:
    if not isinstance(v, list) or len(v) > MAX_ITEMS:
        raise StateError(f"{where}: expected a list of at most {MAX_ITEMS} items")
    out = []
    for item in v:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)
                and len(item[1]) <= MAX_ITEMS):
            raise StateError(f"{where}: expected [ts, [finding, ...]] items")
        out.append((_num(item[0], where), [_dec_dc(Finding, f, f"{where}.finding") for f in item[1]]))
    return out


def _enc_findings(v: dict, where: str) -> list:
    return [_enc_dc(f, f"{where}.finding") for f in v.values()]


def _dec_findings(v: Any, where: str) -> dict:
    if not isinstance(v, list) or len(v) > MAX_ITEMS:
        raise StateError(f"{where}: expected a list of at most {MAX_ITEMS} findings")
    fs = [_dec_dc(Finding, f, f"{where}.finding") for f in v]
    return {f.signal: f for f in fs}


def _enc_incident(v: Incident | None, where: str) -> Any:
    return None if v is None else _enc_dc(v, where)


def _dec_incident(v: Any, where: str) -> Incident | None:
    return None if v is None else _dec_dc(Incident, v, where)


def _scalar_codec(t: type) -> tuple[Callable, Callable]:
    def dec(v: Any, where: str) -> Any:
        if t is float:
            return _num(v, where)
        if type(v) is not t or (isinstance(v, str) and len(v) > MAX_STR):
            raise StateError(f"{where}: expected {t.__name__}, got {type(v).__name__}")
        return v

    return (lambda v, where: v), dec


#: codec (encode, decode) per annotation of a lifecycle dataclass field
_BY_ANNOTATION: dict[str, tuple[Callable, Callable]] = {
    "int": _scalar_codec(int),
    "float": _scalar_codec(float),
    "str": _scalar_codec(str),
    "bool": _scalar_codec(bool),
    "Assessment": (_enc_assessment, _dec_assessment),
    "dict[str, Finding]": (_enc_findings, _dec_findings),
    "Incident | None": (_enc_incident, _dec_incident),
}
#: fields whose annotation does not say enough
_BY_FIELD: dict[tuple[str, str], tuple[Callable, Callable]] = {
    ("Tracker", "recent"): (_enc_recent, _dec_recent),
    ("Finding", "signal"): (_scalar_codec(str)[0], _dec_signal),
}
#: fields not written: set from the record's key on load
_FROM_KEY = {("Incident", "customer_id")}


def _fields(cls: type) -> list[tuple[str, Callable, Callable]]:
    out = []
    for f in dataclasses.fields(cls):
        key = (cls.__name__, f.name)
        if key in _FROM_KEY:
            continue
        codec = _BY_FIELD.get(key) or _BY_ANNOTATION.get(str(f.type))
        if codec is None:
            raise StateError(f"no state codec for {cls.__name__}.{f.name}: {f.type}")
        out.append((f.name, *codec))
    return out


_ASSESSMENT = _assessment_fields()
_DATACLASSES: tuple[type, ...] = (Tracker, Incident, Finding)
_FIELDS: dict[type, list[tuple[str, Callable, Callable]]] = {cls: _fields(cls) for cls in _DATACLASSES}


def _enc_dc(obj: Any, where: str) -> list:
    cls = type(obj)
    return [enc(getattr(obj, name), f"{where}.{name}") for name, enc, _ in _FIELDS[cls]]


def _dec_dc(cls: type, v: Any, where: str) -> Any:
    spec = _FIELDS[cls]
    if not isinstance(v, list) or len(v) != len(spec):
        raise StateError(f"{where}: expected {len(spec)} {cls.__name__} fields")
    kwargs = {name: dec(x, f"{where}.{name}") for (name, _, dec), x in zip(spec, v)}
    for c, name in _FROM_KEY:
        if c == cls.__name__:
            kwargs[name] = ""  # set by the caller, which knows the record's key
    return cls(**kwargs)


def tracker_state(tr: Tracker) -> list:
    """The alert lifecycle of one customer, as msgpack-ready values."""
    return _enc_dc(tr, "Tracker")


def tracker_from_state(v: Any, customer_id: str) -> Tracker:
    """Rebuild a :class:`~detectors.alerting.Tracker` (its incident belongs to ``customer_id``)."""
    tr = _dec_dc(Tracker, v, "Tracker")
    if tr.incident is not None:
        tr.incident.customer_id = customer_id
    return tr


def layout_digest(models: Mapping[str, Any]) -> str:
    """Digest of what a record's positions mean: signals, classes, ``_STATE``, lifecycle fields."""
    desc = {
        "models": [[s, type(m).__name__, list(state_names(m))] for s, m in models.items()],
        "lifecycle": {cls.__name__: [name for name, _, _ in _FIELDS[cls]] for cls in _DATACLASSES},
        "assessment": list(Assessment._fields),
        "customer": ["last_ts", "interval_s", "models", "tracker"],
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:12]


# -- records and files ----------------------------------------------------------------------
def _pack_default(v: Any) -> Any:
    """What msgpack does not know: ``array('d')`` (packed float64); anything else is an error."""
    enc = _enc(v, "state")
    if not isinstance(enc, bytes):
        raise StateError(f"state: no state codec for {type(v).__name__}")
    return enc


def _pack(v: Any) -> bytes:
    try:
        return msgpack.packb(v, use_bin_type=True, default=_pack_default)
    except StateError:
        raise
    except Exception as exc:  # e.g. an int beyond 64 bits
        raise StateError(f"state cannot be written ({type(exc).__name__}: {exc})"[:300]) from None


def _unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(
        raw=False, strict_map_key=True, max_buffer_size=0, max_str_len=MAX_STR * 4,
        max_bin_len=8 * MAX_DOUBLES, max_array_len=MAX_ITEMS, max_map_len=0, max_ext_len=0,
    )


def _unpack_one(blob: bytes, where: str) -> Any:
    try:
        return msgpack.unpackb(
            blob, raw=False, strict_map_key=True, max_str_len=MAX_STR * 4, max_bin_len=8 * MAX_DOUBLES,
            max_array_len=MAX_ITEMS, max_map_len=0, max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several kinds on garbage: all mean "corrupt"
        raise StateError(f"{where}: corrupt ({type(exc).__name__}: {exc})"[:300]) from None


class StateCodec:
    """Encode and decode customers' state for one model configuration.

    Parameters
    ----------
    fingerprint
        The model fingerprint (:meth:`~detectors.config.DetectorConfig.model_fingerprint`).
    make_models
        Builds one customer's fresh models (``signal -> detector``) from the configuration.
    """

    def __init__(self, fingerprint: str, make_models: Callable[[], dict[str, Any]]):
        self.fingerprint = fingerprint
        self.make_models = make_models
        probe = make_models()
        self.signals = tuple(probe)
        self.layout = layout_digest(probe)
        self._head = [FORMAT_VERSION, fingerprint, self.layout]
        # per signal: the state names and a validator per slot, from the fresh probe (every
        # model of this codec is built from the same configuration, so its fresh values match)
        self._slots = []
        for name, m in probe.items():
            cls = type(m).__name__
            names = state_names(m)
            try:
                checks = tuple(_checker(getattr(m, a)) for a in names)
            except StateError as exc:
                raise StateError(f"{cls}: {exc}") from None
            self._slots.append((name, names, checks, tuple(f"{cls}.{a}" for a in names)))

    # -- one customer's values
    def customer(self, st: Any) -> list:
        """``[last_ts, interval_s, [model state, ...], tracker]`` of a ``CustomerState``.

        Arrays stay ``array('d')`` here: the packer writes them (:func:`_pack_default`).
        """
        states = [[getattr(m, a) for a in state_names(m)] for m in st.models.values()]
        return [st.last_ts, st.interval_s, states, tracker_state(st.tracker)]

    def from_customer(self, cid: str, v: Any) -> tuple[dict[str, Any], Tracker, float | None, int]:
        """``(models, tracker, last_ts, interval_s)`` from :meth:`customer`'s values, validated."""
        decoded, tracker, last_ts, interval_s = self.decode_customer(cid, v)
        models = self.make_models()  # only once everything is valid
        for m, (_, names, _, _), values in zip(models.values(), self._slots, decoded):
            for a, val in zip(names, values):
                setattr(m, a, val)
        return models, tracker, last_ts, interval_s

    def decode_customer(self, cid: str, v: Any) -> tuple[list[list], Tracker, float | None, int]:
        """``(per-model state values, tracker, last_ts, interval_s)``, validated, no models built.

        The values of each model are in its ``_STATE`` order (arrays as ``array('d')``): what
        the fleet engine writes into its arrays.
        """
        if not isinstance(v, list) or len(v) != 4:
            raise StateError(f"customer {cid}: expected [last_ts, interval_s, models, tracker]")
        last_ts, interval_s, states, tracker = v
        if last_ts is not None:
            last_ts = _num(last_ts, f"customer {cid}: last_ts")
        if type(interval_s) is not int or interval_s <= 0:
            raise StateError(f"customer {cid}: interval_s must be a positive int, got {interval_s!r}"[:200])
        if not isinstance(states, list) or len(states) != len(self.signals):
            raise StateError(f"customer {cid}: expected {len(self.signals)} models")
        decoded = []
        for (name, names, checks, wheres), values in zip(self._slots, states):
            if not isinstance(values, list) or len(values) != len(names):
                raise StateError(f"customer {cid}, signal {name}: expected {len(names)} state values")
            try:
                decoded.append([check(v, w) for check, v, w in zip(checks, values, wheres)])
            except StateError as exc:
                raise StateError(f"customer {cid}, signal {name}: {exc}") from None
        tracker = tracker_from_state(tracker, cid)
        return decoded, tracker, last_ts, interval_s

    def _check_head(self, head: Any, what: str) -> None:
        if not (isinstance(head, list) and len(head) >= 3 and type(head[0]) is int):
            raise StateError(f"{what}: corrupt header")
        version, fingerprint, layout = head[:3]
        if version != FORMAT_VERSION:
            raise StateError(
                f"{what}: state format version {version}, this Lookout reads version {FORMAT_VERSION}"
            )
        if fingerprint != self.fingerprint:
            raise StateError(f"{what}: written with other model settings "
                             f"(model fingerprint {fingerprint!r}, ours {self.fingerprint!r})"[:300])
        if layout != self.layout:
            raise StateError(f"{what}: written by a Lookout whose models keep other state "
                             f"(layout {layout!r}, ours {self.layout!r})"[:300])

    @staticmethod
    def _check_magic(blob: Any, magic: bytes, what: str) -> None:
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise StateError(f"{what}: expected bytes, got {type(blob).__name__}")
        head = bytes(blob[:4])
        if head != magic:
            hint = (
                " (a pickle from an older Lookout? pickles are never loaded)"
                if head[:1] == _PICKLE_PREFIX
                else ""
            )
            raise StateError(f"{what}: not a Lookout state {'record' if magic == RECORD_MAGIC else 'file'}"
                             f" (starts with {head!r}){hint}")

    # -- one record (Kafka snapshots)
    def dump_record(self, st: Any) -> bytes:
        return self.dump_values(self.customer(st))

    def dump_values(self, values: list) -> bytes:
        """A record of one customer's :meth:`customer` values (arrays may be raw float64 bytes)."""
        return RECORD_MAGIC + _pack(self._head + [values])

    def load_record(self, cid: str, blob: bytes) -> tuple[dict[str, Any], Tracker, float | None, int]:
        return _guarded(self.from_customer, cid, self._record_body(cid, blob))

    def load_values(self, cid: str, blob: bytes) -> tuple[list[list], Tracker, float | None, int]:
        """:meth:`load_record` without building models (:meth:`decode_customer`'s result)."""
        return _guarded(self.decode_customer, cid, self._record_body(cid, blob))

    def _record_body(self, cid: str, blob: bytes) -> Any:
        what = f"state of {cid!r}"[:100]
        self._check_magic(blob, RECORD_MAGIC, what)
        if len(blob) > MAX_RECORD_BYTES:
            raise StateError(f"{what}: {len(blob)} bytes (max {MAX_RECORD_BYTES})")
        v = _unpack_one(bytes(blob[4:]), what)
        self._check_head(v, what)
        if len(v) != 4:
            raise StateError(f"{what}: corrupt record")
        return v[3]

    # -- files (data-dir checkpoint, --initial-state)
    def dump_file(self, customers: Mapping[str, Any]) -> Iterator[bytes]:
        """The file in chunks: header, then one ``[cid, customer]`` per customer."""
        return self.dump_file_values(len(customers), ((c, self.customer(st)) for c, st in customers.items()))

    def dump_file_values(self, count: int, items: Iterable[tuple[str, list]]) -> Iterator[bytes]:
        """:meth:`dump_file` from ``count`` ``(customer id, customer values)`` pairs."""
        pack = msgpack.Packer(use_bin_type=True, default=_pack_default).pack
        yield FILE_MAGIC + pack(self._head + [count])
        for cid, values in items:
            yield pack([cid, values])

    def load_file(self, blob: bytes, decode: Callable[[str, Any], tuple] | None = None) -> dict[str, tuple]:
        """Every customer of a file, all validated (nothing partial): ``cid -> from_customer``
        (or ``decode``, e.g. :meth:`decode_customer`).

        The cyclic garbage collector is paused meanwhile: the models hold no cycles, and its
        passes over a heap that grows by millions of objects would double the time.
        """
        with cyclic_gc_paused():
            return self._load_file(blob, decode or self.from_customer)

    def _load_file(self, blob: bytes, decode: Callable[[str, Any], tuple]) -> dict[str, tuple]:
        what = "state file"
        self._check_magic(blob, FILE_MAGIC, what)
        unp = _unpacker()
        data = bytes(blob[4:])
        try:
            unp.feed(data)
            items = iter(unp)
            head: Any = next(items, None)  # untrusted until _check_head passes
            self._check_head(head, what)
            count = head[3] if len(head) == 4 else None
            if type(count) is not int or count < 0:
                raise StateError(f"{what}: corrupt header")
            out: dict[str, tuple] = {}
            for item in items:
                if not (isinstance(item, list) and len(item) == 2):
                    raise StateError(f"{what}: corrupt customer entry #{len(out) + 1}")
                cid = item[0]
                if not isinstance(cid, str) or not CUSTOMER_ID_RE.fullmatch(cid):
                    raise StateError(f"{what}: invalid customer id {cid!r}"[:200])
                if cid in out:
                    raise StateError(f"{what}: customer {cid} appears twice")
                if len(out) >= count:
                    raise StateError(f"{what}: more customers than the {count} in its header")
                out[cid] = _guarded(decode, cid, item[1])
        except StateError:
            raise
        except Exception as exc:  # msgpack's errors on garbage (and any slip in the checks above)
            raise StateError(f"{what}: corrupt ({type(exc).__name__}: {exc})"[:300]) from None
        if len(out) != count:
            raise StateError(f"{what}: truncated, {len(out)} of {count} customers")
        if unp.tell() != len(data):
            raise StateError(f"{what}: {len(data) - unp.tell()} bytes of an incomplete entry at the end")
        return out


def _guarded(fn: Callable, *args: Any) -> Any:
    """Call a decoder: any exception but :class:`StateError` becomes one (never another crash)."""
    try:
        return fn(*args)
    except StateError:
        raise
    except Exception as exc:
        raise StateError(f"corrupt state ({type(exc).__name__}: {exc})"[:300]) from None

