"""A JSON codec for task records: plain data in, plain data out, never code.

A killed run resumes from what its finished tasks handed back (`OUT/.dataprep/tasks/`), and a
work folder is no more trusted than the data beside it, so pickle is out: a replaced file
would run code. `dumps` encodes exactly the values tasks return: None, bool, int, float, str,
lists, tuples, dicts with any such keys, numpy numeric arrays and scalars, bytes, the Arrow
scalars that label and group counts use as keys (dates, times, decimals...), Arrow schemas,
shard entries, and the dataclasses stages mark `@recordable` (a task phase's result payload),
stored by name and fields and rebuilt only as a class so marked. Anything else is a TypeError
at write time, so a stage that starts returning a new type fails on its first run instead of
resuming wrongly. `loads` builds values from these
tags only, checking each; anything else is a `RecordError`.

Round trips are exact: tuples stay tuples, floats keep their bits (NaN payloads too), arrays
keep dtype, byte order and shape, dicts keep their order.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import json
import math
import re
import struct
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from dataprep.dataset import ShardEntry

T = TypeVar("T")
MAX_DEPTH = 64  # task results nest a few levels; a deeper record is garbled
_DTYPE = re.compile(r"[<>|=][biufc][0-9]{1,2}")  # numeric dtypes only (no objects, no records)
_ARROW_SCALARS = (dt.date, dt.time, dt.timedelta, decimal.Decimal)  # datetime is a date
_SHARD_FIELDS = {f.name: f for f in dataclasses.fields(ShardEntry)}
_PAYLOADS: dict[str, type] = {}  # "module.Class" -> a @recordable dataclass


def recordable(cls: type[T]) -> type[T]:
    """Mark a dataclass as a result payload that task records may hold, by its module and
    name: decoding builds only classes so marked, from their fields, never running other code.
    Renaming or moving the class makes older records unreadable (their tasks rerun)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__qualname__} is not a dataclass")
    _PAYLOADS[_payload_name(cls)] = cls
    return cls


def _payload_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class RecordError(ValueError):
    """A record that is not one `dumps` wrote (truncated, edited, or from elsewhere)."""


def dumps(value: Any) -> bytes:
    """Encode `value`; TypeError naming where in it a value of another type sits."""
    encoded = _encode(value, "(value)")
    return json.dumps(encoded, allow_nan=False, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """Decode what `dumps` wrote; RecordError for anything else."""
    try:
        raw = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        return _decode(raw, 0)
    except RecordError:
        raise
    except RecursionError:
        raise RecordError("nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - pure decoding: any failure means "not ours"
        raise RecordError(_one_line(exc)) from None


# --- encoding -------------------------------------------------------------------------------


def _encode(value: Any, where: str) -> Any:
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"$float": struct.pack("<d", value).hex()}
    if kind is list:
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is tuple:
        return {"$tuple": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if kind is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {
            "$dict": [
                [_encode(k, f"{where} key {k!r}"), _encode(v, f"{where}[{k!r}]")]
                for k, v in value.items()
            ]
        }
    if kind is bytes:
        return {"$bytes": _b64(value)}
    if kind is np.ndarray and _DTYPE.fullmatch(value.dtype.str):
        data = np.ascontiguousarray(value).tobytes()
        return {"$ndarray": [value.dtype.str, list(value.shape), _b64(data)]}
    if isinstance(value, np.generic) and _DTYPE.fullmatch(value.dtype.str):
        return {"$npscalar": [value.dtype.str, _b64(value.tobytes())]}
    if kind is pa.Schema:
        return {"$schema": _b64(value.serialize().to_pybytes())}
    if kind is ShardEntry:
        return {"$shard": {k: _encode(v, f"{where}.{k}") for k, v in value.to_json().items()}}
    if isinstance(value, _ARROW_SCALARS):
        return {"$arrow": _arrow_scalar(value, where)}
    if _PAYLOADS.get(_payload_name(kind)) is kind:
        fields = {
            f.name: _encode(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
        return {"$payload": [_payload_name(kind), fields]}
    raise TypeError(
        f"cannot store a {kind.__module__}.{kind.__qualname__} at {where} in a task record; "
        "records hold JSON values, tuples, dicts, numeric numpy arrays and scalars, bytes, "
        "Arrow scalars, schemas, shard entries and @recordable dataclasses "
        "(see dataprep/records.py)"
    )


def _arrow_scalar(value: Any, where: str) -> str:
    """A date/time/decimal as a one-value Arrow IPC stream; refused unless it comes back equal."""
    try:
        batch = pa.record_batch([pa.array([value], _exact_type(value))], names=["v"])
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise TypeError(f"cannot store {value!r} at {where} in a task record: {exc}") from None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    encoded = _b64(sink.getvalue().to_pybytes())
    back = _decode_arrow(encoded)
    if type(back) is not type(value) or back != value or str(back) != str(value):
        raise TypeError(f"cannot store {value!r} at {where} in a task record: not exact in Arrow")
    return encoded


def _exact_type(value: Any) -> pa.DataType | None:
    """pandas' Timestamp / Timedelta (what Arrow hands back for nanosecond values when pandas
    is installed) would be inferred as microseconds, dropping the nanoseconds: keep ns."""
    module, name = type(value).__module__.split(".")[0], type(value).__name__
    if module == "pandas" and name == "Timestamp":
        return pa.timestamp("ns", tz=None if value.tz is None else str(value.tz))
    if module == "pandas" and name == "Timedelta":
        return pa.duration("ns")
    return None  # inferred


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- decoding -------------------------------------------------------------------------------


def _decode(raw: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise RecordError("nested too deeply")
    if raw is None or type(raw) in (bool, int, float, str):
        return raw
    if type(raw) is list:
        return [_decode(v, depth + 1) for v in raw]
    if type(raw) is not dict:
        raise RecordError(f"unexpected {type(raw).__name__}")
    tags = [k for k in raw if k.startswith("$")]
    if not tags:
        return {k: _decode(v, depth + 1) for k, v in raw.items()}
    if len(raw) != 1 or tags[0] not in _TAGS:
        raise RecordError(f"unknown tag {tags[0]!r}")
    return _TAGS[tags[0]](raw[tags[0]], depth + 1)


def _tuple(payload: Any, depth: int) -> tuple[Any, ...]:
    return tuple(_decode(_typed(payload, list), depth))


def _dict(payload: Any, depth: int) -> dict[Any, Any]:
    out = {}
    for pair in _typed(payload, list):
        if type(pair) is not list or len(pair) != 2:
            raise RecordError("a $dict item is not a [key, value] pair")
        out[_decode(pair[0], depth)] = _decode(pair[1], depth)
    return out


def _float(payload: Any, depth: int) -> float:
    bits = bytes.fromhex(_typed(payload, str))
    if len(bits) != 8:
        raise RecordError("a $float is not 8 bytes")
    return float(struct.unpack("<d", bits)[0])


def _bytes(payload: Any, depth: int) -> bytes:
    return base64.b64decode(_typed(payload, str), validate=True)


def _dtype(text: Any) -> np.dtype:
    if type(text) is not str or not _DTYPE.fullmatch(text):
        raise RecordError(f"dtype {text!r} is not a numeric dtype")
    return np.dtype(text)


def _ndarray(payload: Any, depth: int) -> np.ndarray:
    if type(payload) is not list or len(payload) != 3:
        raise RecordError("an $ndarray is not [dtype, shape, data]")
    dtype, shape, data = _dtype(payload[0]), _typed(payload[1], list), _bytes(payload[2], depth)
    if not all(type(n) is int and n >= 0 for n in shape):
        raise RecordError(f"bad array shape {shape!r}")
    if math.prod(shape) * dtype.itemsize != len(data):
        raise RecordError(f"array data is {len(data)} bytes, not {shape} x {dtype}")
    return np.frombuffer(data, dtype).reshape(shape).copy()


def _npscalar(payload: Any, depth: int) -> np.generic:
    if type(payload) is not list or len(payload) != 2:
        raise RecordError("an $npscalar is not [dtype, data]")
    dtype, data = _dtype(payload[0]), _bytes(payload[1], depth)
    if len(data) != dtype.itemsize:
        raise RecordError(f"scalar data is {len(data)} bytes, not one {dtype}")
    return np.frombuffer(data, dtype)[0]


def _arrow(payload: Any, depth: int) -> Any:
    return _decode_arrow(_typed(payload, str))


def _decode_arrow(encoded: str) -> Any:
    table = pa.ipc.open_stream(pa.py_buffer(base64.b64decode(encoded, validate=True))).read_all()
    if table.shape != (1, 1):
        raise RecordError("an $arrow value is not one value")
    table.validate(full=True)  # offsets and lengths in range before any value is read
    return table.column(0)[0].as_py()


def _schema(payload: Any, depth: int) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(_bytes(payload, depth)))


def _shard(payload: Any, depth: int) -> ShardEntry:
    fields = _typed(payload, dict)
    unknown = set(fields) - set(_SHARD_FIELDS)
    if unknown:
        raise RecordError(f"a shard entry has unknown fields {sorted(unknown)}")
    expected = {"path": str, "rows": int, "bytes": int, "xxh3_128": str}
    for name, kind in expected.items():
        if type(fields.get(name)) is not kind:
            raise RecordError(f"a shard entry's {name} is not {kind.__name__}")
    name = fields["path"]
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise RecordError(f"a shard entry's path {name!r} is not a plain file name")
    groups = fields.get("row_groups", [])
    if type(groups) is not list or not all(type(n) is int for n in groups):
        raise RecordError("a shard entry's row_groups is not a list of ints")
    if fields.get("partition") is not None and type(fields["partition"]) is not int:
        raise RecordError("a shard entry's partition is not an int")
    return ShardEntry(**fields)


def _payload(payload: Any, depth: int) -> Any:
    if type(payload) is not list or len(payload) != 2:
        raise RecordError("a $payload is not [class, fields]")
    name, fields = _typed(payload[0], str), _typed(payload[1], dict)
    cls = _PAYLOADS.get(name)
    if cls is None:
        raise RecordError(f"{name!r} is not a result payload this dataprep knows")
    expected = [f.name for f in dataclasses.fields(cls) if f.init]
    if sorted(fields) != sorted(expected):
        raise RecordError(f"a {name} payload has fields {sorted(fields)}, not {sorted(expected)}")
    return cls(**{k: _decode(v, depth) for k, v in fields.items()})


_TAGS = {
    "$tuple": _tuple,
    "$dict": _dict,
    "$float": _float,
    "$bytes": _bytes,
    "$ndarray": _ndarray,
    "$npscalar": _npscalar,
    "$arrow": _arrow,
    "$schema": _schema,
    "$shard": _shard,
    "$payload": _payload,
}


def _typed(value: Any, kind: type) -> Any:
    if type(value) is not kind:
        raise RecordError(f"expected {kind.__name__}, found {type(value).__name__}")
    return value


def _no_constant(name: str) -> Any:
    raise RecordError(f"{name} is not valid JSON")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
