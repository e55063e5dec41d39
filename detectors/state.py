"""A safe, versioned format for the learned state of customers: msgpack data, never code.

A customer's state is what :class:`~detectors.engine.Engine` keeps for it: one model per
signal, the alert lifecycle (:class:`~detectors.alerting.Tracker` and its open
:class:`~detectors.alerting.Incident`), the last event time and interval. Only the *learned*
state is written. Hyper-parameters are not: on load the models are rebuilt from the
configuration and the learned values are set on them, so a record written under other model
settings is refused (the model fingerprint in the header does not match) instead of silently
mixing two configurations.

What is written is declared once: a model's state is its *state row*, whose fields each model
family declares with the kind a record writes them as (:class:`~detectors.layout.Family`,
declared in :mod:`detectors.kernel`; caches derived from the rest are not written); the
lifecycle dataclasses are written field by field from their annotations. Each value by its kind:

=====================  ====================================================
kind                   msgpack
=====================  ====================================================
int, bool, str         int, bool, str
float                  float64 (bit-exact); an optional float: nil or float64
profile                bin: packed little-endian float64
list / tuple           array (lifecycle fields, at most :data:`MAX_ITEMS`)
=====================  ====================================================

On load every value is checked against its declaration: same kind, profiles of the declared
length, finite floats. Anything wrong raises :class:`StateError` -- a ``ValueError`` with a
message that says what -- never another exception, and nothing in a record is ever executed.

A *layout* digest (signal -> family -> field names, and the lifecycle fields) is written too: a
state written by a Lookout whose models keep other fields is refused as well.

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
detectors.state.StateError: SeasonalDetector: 3 state values, expected 29
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import msgpack
import numpy as np

from .alerting import Finding, Incident, Tracker
from .events import CUSTOMER_ID_RE
from .gcpause import cyclic_gc_paused
from .kernel import Assessment
from .layout import Family, Field, Kind
from .signals import SIGNALS

#: version of the format (bump on any incompatible change of this module or of a model's fields)
FORMAT_VERSION = 3
#: what the records of each older version still readable hold: model family -> its fields in
#: record order. On load each field a record holds goes to the field of the same name (they
#: mean the same), the others start from their defaults: an upgrade does not send a fleet back
#: to warming. Version 1: before the calibrated tail (issue 17), whose fields start from its prior;
#: version 2: before the seasonal short-term term (issue 17), whose fields start at 0 (no term:
#: it learns from the next points).
MIGRATIONS: Mapping[int, Mapping[str, tuple[str, ...]]] = {
    1: {
        "SeasonalDetector": ("_n", "_t0", "_last", "_level", "_hod", "_hod_w", "_dow", "_dow_w", "_s2",
                             "_s2_w", "_centred", "_shift", "_anom_since", "_anom_sign", "_warm", "_cs",
                             "_cs_t0"),
        "RatioDetector": ("_n", "_t0", "_last", "_a", "_b", "_tau2", "_tau_w", "_anom_since", "_anom_sign",
                          "_anom_a", "_anom_b", "_warm", "_cs", "_cs_t0", "_cs_num", "_cs_den"),
    },
    2: {
        "SeasonalDetector": ("_n", "_t0", "_last", "_level", "_hod", "_hod_w", "_dow", "_dow_w", "_s2",
                             "_s2_w", "_centred", "_shift", "_anom_since", "_anom_sign", "_warm", "_cs",
                             "_cs_t0", "_tail_pi", "_tail_m1", "_tail_m2", "_tail_w", "_chg", "_chg_t0",
                             "_chg_off", "_chg_n", "_chg_ok"),
        "RatioDetector": ("_n", "_t0", "_last", "_a", "_b", "_tau2", "_tau_w", "_anom_since", "_anom_sign",
                          "_anom_a", "_anom_b", "_warm", "_cs", "_cs_t0", "_cs_num", "_cs_den", "_tail_pi",
                          "_tail_m1", "_tail_m2", "_tail_w"),
    },
}
RECORD_MAGIC = b"LKSR"
FILE_MAGIC = b"LKSF"
#: bounds that keep a hostile record from costing memory or time
MAX_RECORD_BYTES = 1 << 20
MAX_ITEMS = 4096
MAX_STR = 256
MAX_DOUBLES = 1 << 16
#: what pickles start with (protocol 2+): named in the error for old checkpoints
_PICKLE_PREFIX = b"\x80"
#: how profiles are written: float64, little-endian whatever the machine
FLOAT64_LE = np.dtype("<f8")


class StateError(ValueError):
    """A state record or file that cannot be used (garbage, other version, other settings)."""


# -- models -----------------------------------------------------------------------------------
def _doubles(raw: Any, where: str, n: int) -> np.ndarray:
    if not isinstance(raw, bytes):
        raise StateError(f"{where}: expected packed doubles, got {type(raw).__name__}")
    if len(raw) != 8 * n:
        raise StateError(f"{where}: array of {len(raw)} bytes, expected {n} doubles")
    out = np.frombuffer(raw, dtype=FLOAT64_LE)
    if not np.isfinite(out).all():
        raise StateError(f"{where}: non-finite value in array")
    return out


def _decode_field(kind: Kind, v: Any, where: str) -> float:
    """One scalar field's value as its row holds it (None: NaN), checked against its kind."""
    if kind is Kind.FLOAT:
        if (type(v) is float and math.isfinite(v)) or type(v) is int:
            return float(v)
        raise StateError(f"{where}: expected a finite float, got {v!r}"[:200])
    if kind is Kind.OPTIONAL:
        if v is None:
            return math.nan
        if type(v) in (float, int) and math.isfinite(v):
            return float(v)
        raise StateError(f"{where}: expected None or a finite number, got {v!r}"[:200])
    if kind is Kind.INT:
        if type(v) is not int:
            raise StateError(f"{where}: expected int, got {type(v).__name__}")
        return float(v)
    if type(v) is not bool:
        raise StateError(f"{where}: expected bool, got {type(v).__name__}")
    return 1.0 if v else 0.0


def row_values(family: Family, row: Sequence[float], raw: bytes) -> list:
    """The values a record writes for one state row, in the family's record order.

    ``row``: the row's floats (a list: its items must be Python numbers), ``raw``: the same
    row as little-endian float64 bytes (profiles are written from it).
    """
    out: list[Any] = []
    for kind, at, end in family.record_steps:
        if kind is Kind.FLOAT:
            out += row[at:end]
        elif kind is Kind.INT:
            out.append(int(row[at]))
        elif kind is Kind.BOOL:
            out.append(row[at] != 0.0)
        elif kind is Kind.OPTIONAL:
            x = row[at]
            out.append(None if x != x else x)
        else:
            out.append(raw[8 * at:8 * end])
    return out


def write_row(family: Family, row: np.ndarray, values: Any, wheres: Sequence[str],
              fields: Sequence[Field] | None = None) -> None:
    """Write a record's values into a state row (its caches untouched), all checked first:
    a bad value raises :class:`StateError` and leaves ``row`` as it was. ``fields``: those the
    record holds (an older version's, :data:`MIGRATIONS`), by default the family's."""
    out = row.tolist()
    for f, v, where in zip(family.persisted if fields is None else fields, values, wheres):
        if f.kind is Kind.PROFILE:
            out[f.offset:f.offset + f.size] = _doubles(v, where, f.size).tolist()
        else:
            out[f.offset] = _decode_field(f.kind, v, where)
    row[:] = out


def _wheres(family: Family) -> tuple[str, ...]:
    return tuple(f"{family.name}.{f.name}" for f in family.persisted)


def model_state(model: Any) -> list:
    """The learned state of one detector, as msgpack-ready values (its family's record order)."""
    row = model.state
    return row_values(model.family, row.tolist(), row.astype(FLOAT64_LE, copy=False).tobytes())


def set_model_state(model: Any, values: Any) -> None:
    """Set the learned state on a detector built with the right hyper-parameters.

    Every value is validated before anything is set, so a bad record leaves ``model`` untouched.
    """
    family = model.family
    n = len(family.persisted)
    if not isinstance(values, list) or len(values) != n:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise StateError(f"{family.name}: {got} state values, expected {n}")
    write_row(family, model.state, values, _wheres(family))


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
    return [[ts, [_enc_dc(f, f"{where}.finding") for f in fs]] for ts, fs in v]


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


def layout_digest(families: Mapping[str, Family], version: int = FORMAT_VERSION) -> str:
    """Digest of what a record's positions mean: signals, families, their fields (as records of
    format ``version`` hold them), lifecycle fields."""
    desc = {
        "models": [[s, f.name, list(_field_names(f, version))] for s, f in families.items()],
        "lifecycle": {cls.__name__: [name for name, _, _ in _FIELDS[cls]] for cls in _DATACLASSES},
        "assessment": list(Assessment._fields),
        "customer": ["last_ts", "interval_s", "models", "tracker"],
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:12]


def _field_names(family: Family, version: int) -> tuple[str, ...]:
    if version == FORMAT_VERSION:
        return tuple(x.name for x in family.persisted)
    return MIGRATIONS[version][family.name]


def _record_fields(family: Family, version: int) -> tuple[Field, ...]:
    """The fields a record of ``version`` holds, as this version's fields of the same names."""
    by_name = {f.name: f for f in family.persisted}
    return tuple(by_name[n] for n in _field_names(family, version))


# -- records and files ----------------------------------------------------------------------
def customer_values(last_ts: float | None, interval_s: int, states: list[list], tracker: list) -> list:
    """One customer as a record holds it: ``[last_ts, interval_s, [model state, ...], tracker]``."""
    return [last_ts, interval_s, states, tracker]


class CustomerRecord(NamedTuple):
    """One customer's state read from a record, validated."""

    rows: list[np.ndarray]  # a state row per signal (caches at their defaults)
    tracker: Tracker
    last_ts: float | None
    interval_s: int


def _pack(v: Any) -> bytes:
    try:
        return msgpack.packb(v, use_bin_type=True)
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
    families
        ``signal -> model family`` of one customer's models, in record order.
    """

    def __init__(self, fingerprint: str, families: Mapping[str, Family]):
        self.fingerprint = fingerprint
        self.families = dict(families)
        self.layout = layout_digest(families)
        self._head = [FORMAT_VERSION, fingerprint, self.layout]
        #: per readable version: its layout digest, and per signal the fields its records hold
        self._versions = {
            version: (layout_digest(families, version),
                      [(name, family, _record_fields(family, version)) for name, family in families.items()])
            for version in (FORMAT_VERSION, *MIGRATIONS)
        }

    def decode_customer(self, cid: str, v: Any, version: int = FORMAT_VERSION) -> CustomerRecord:
        """A customer's :func:`customer_values` (as format ``version`` writes them), validated,
        as state rows of this version (fields it lacks at their defaults)."""
        if not isinstance(v, list) or len(v) != 4:
            raise StateError(f"customer {cid}: expected [last_ts, interval_s, models, tracker]")
        last_ts, interval_s, states, tracker = v
        if last_ts is not None:
            last_ts = _num(last_ts, f"customer {cid}: last_ts")
        if type(interval_s) is not int or interval_s <= 0:
            raise StateError(f"customer {cid}: interval_s must be a positive int, got {interval_s!r}"[:200])
        slots = self._versions[version][1]
        if not isinstance(states, list) or len(states) != len(slots):
            raise StateError(f"customer {cid}: expected {len(slots)} models")
        rows = []
        for (name, family, fields), values in zip(slots, states):
            wheres = [f"{family.name}.{f.name}" for f in fields]
            if not isinstance(values, list) or len(values) != len(wheres):
                raise StateError(f"customer {cid}, signal {name}: expected {len(wheres)} state values")
            row = family.fresh_row()
            try:
                write_row(family, row, values, wheres, fields)
            except StateError as exc:
                raise StateError(f"customer {cid}, signal {name}: {exc}") from None
            rows.append(row)
        return CustomerRecord(rows, tracker_from_state(tracker, cid), last_ts, interval_s)

    def _check_head(self, head: Any, what: str) -> int:
        """The format version of a valid header (else StateError)."""
        if not (isinstance(head, list) and len(head) >= 3 and type(head[0]) is int):
            raise StateError(f"{what}: corrupt header")
        version, fingerprint, layout = head[:3]
        if version not in self._versions:
            readable = ", ".join(str(v) for v in sorted(self._versions))
            raise StateError(f"{what}: state format version {version}, "
                             f"this Lookout reads versions {readable}")
        if fingerprint != self.fingerprint:
            raise StateError(f"{what}: written with other model settings "
                             f"(model fingerprint {fingerprint!r}, ours {self.fingerprint!r})"[:300])
        ours = self._versions[version][0]
        if layout != ours:
            raise StateError(f"{what}: written by a Lookout whose models keep other state "
                             f"(layout {layout!r}, ours {ours!r})"[:300])
        return version

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
    def dump_record(self, values: list) -> bytes:
        """A record of one customer's :func:`customer_values`."""
        return RECORD_MAGIC + _pack(self._head + [values])

    def load_record(self, cid: str, blob: bytes) -> CustomerRecord:
        """A record of :meth:`dump_record`, validated."""
        return _guarded(self.decode_customer, cid, *self._record_body(cid, blob))

    def _record_body(self, cid: str, blob: bytes) -> tuple[Any, int]:
        what = f"state of {cid!r}"[:100]
        self._check_magic(blob, RECORD_MAGIC, what)
        if len(blob) > MAX_RECORD_BYTES:
            raise StateError(f"{what}: {len(blob)} bytes (max {MAX_RECORD_BYTES})")
        v = _unpack_one(bytes(blob[4:]), what)
        version = self._check_head(v, what)
        if len(v) != 4:
            raise StateError(f"{what}: corrupt record")
        return v[3], version

    # -- files (data-dir checkpoint, --initial-state)
    def dump_file(self, count: int, items: Iterable[tuple[str, list]]) -> Iterator[bytes]:
        """The file in chunks: header, then one ``[cid, customer]`` per ``(customer id,
        customer_values)`` of ``items`` (``count`` of them)."""
        pack = msgpack.Packer(use_bin_type=True).pack
        yield FILE_MAGIC + pack(self._head + [count])
        for cid, values in items:
            yield pack([cid, values])

    def load_file(self, blob: bytes) -> dict[str, CustomerRecord]:
        """Every customer of a file, all validated (nothing partial).

        The cyclic garbage collector is paused meanwhile: the records hold no cycles, and its
        passes over a heap that grows by millions of objects would double the time.
        """
        with cyclic_gc_paused():
            return self._load_file(blob)

    def _load_file(self, blob: bytes) -> dict[str, CustomerRecord]:
        what = "state file"
        self._check_magic(blob, FILE_MAGIC, what)
        unp = _unpacker()
        data = bytes(blob[4:])
        try:
            unp.feed(data)
            items = iter(unp)
            head: Any = next(items, None)  # untrusted until _check_head passes
            version = self._check_head(head, what)
            count = head[3] if len(head) == 4 else None
            if type(count) is not int or count < 0:
                raise StateError(f"{what}: corrupt header")
            out: dict[str, CustomerRecord] = {}
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
                out[cid] = _guarded(self.decode_customer, cid, item[1], version)
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

