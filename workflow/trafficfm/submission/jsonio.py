"""Reading and writing submission JSON: stable text out; a strict, memory-lean parse in.

Writing: compact separators, ASCII only (``\\u`` escapes), no NaN/Infinity, one list item per line,
so the same predictions always give the same bytes.

Reading (:func:`parse`) keeps what a plain ``json.loads`` would hide from a validator: duplicate
keys (the last one silently wins) and non-standard constants (``NaN``, ``Infinity``). It also
stores segmentation polygons compactly while parsing: every object whose keys are all decimal
digits and whose values are all lists (a ``seg`` entry's per-class object) has each well-formed
polygon (a list of ``[int, int]`` points) replaced by an ``(n, 2)`` integer numpy array as soon as
that object is parsed. A full test set holds millions of points; as Python lists they would take
~150 bytes each, as arrays 8. Malformed polygons are left as parsed, for the validator to report.
"""

from __future__ import annotations

import gc
import io
import json
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INT32 = np.iinfo(np.int32)


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: building or parsing millions of small lists (polygon
    points) otherwise triggers collection after collection, doubling the time; these structures
    hold no reference cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def dumps(value) -> str:
    """The one JSON formatting used for every submission fragment."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def json_list(items) -> str:
    """A JSON array of already-serialised items, one item per line."""
    items = list(items)
    return "[\n" + ",\n".join(items) + "\n]" if items else "[]"


def json_object(pairs) -> str:
    """A JSON object of ``(key, serialised value)`` pairs, one member per line."""
    members = [f"{dumps(str(k))}:{v}" for k, v in pairs]
    return "{\n" + ",\n".join(members) + "\n}" if members else "{}"


class CheckedDict(dict):
    """A parsed JSON object that remembers the keys it held more than once."""

    duplicates: tuple[str, ...] = ()


@dataclass
class Parsed:
    value: object = None
    error: str | None = None  # why the text is not JSON at all
    constants: list[str] = field(default_factory=list)  # NaN / Infinity / -Infinity met


def _all_ints(polygon: list) -> bool:
    return all(type(c) is int for point in polygon for c in point)


def _compact_polygons(polygons: list, check_types: bool) -> list:
    out = []
    for polygon in polygons:
        if type(polygon) is list and polygon:
            try:
                array = np.array(polygon)
            except (ValueError, OverflowError, TypeError):
                out.append(polygon)
                continue
            if (array.ndim == 2 and array.shape[1] == 2 and array.dtype.kind == "i"
                    and (not check_types or _all_ints(polygon))):
                if array.min() >= INT32.min and array.max() <= INT32.max:
                    array = array.astype(np.int32)
                out.append(array)
                continue
        out.append(polygon)
    return out


def _is_class_object(pairs) -> bool:
    return bool(pairs) and all(isinstance(k, str) and k.isascii() and k.isdigit() and isinstance(v, list)
                               for k, v in pairs)


def parse(text: str | bytes) -> Parsed:
    """Parse submission JSON; see the module docstring for what is kept beyond ``json.loads``."""
    result = Parsed()
    if isinstance(text, bytes):
        if text.startswith(b"\xef\xbb\xbf"):
            result.error = "the file starts with a UTF-8 byte-order mark, which JSON does not allow"
            return result
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            result.error = f"not UTF-8 text (byte {error.start}: {error.reason})"
            return result
    # Booleans inside polygons would pass numpy's integer check; only look for them when present.
    check_types = "true" in text or "false" in text

    def object_pairs(pairs):
        obj = CheckedDict(pairs)
        if len(obj) != len(pairs):
            seen, dups = set(), []
            for key, _ in pairs:
                if key in seen and key not in dups:
                    dups.append(key)
                seen.add(key)
            obj.duplicates = tuple(dups)
        if _is_class_object(pairs):
            for key in obj:
                obj[key] = _compact_polygons(obj[key], check_types)
        return obj

    def constant(name):
        result.constants.append(name)
        return float(name.replace("Infinity", "inf"))

    try:
        with gc_paused():
            result.value = json.loads(text, object_pairs_hook=object_pairs, parse_constant=constant)
    except json.JSONDecodeError as error:
        result.error = f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
    except RecursionError:
        result.error = "invalid JSON: nested too deeply"
    return result


@dataclass
class Container:
    """A submission file's JSON bytes and where they came from."""

    path: Path
    member: str | None  # the JSON's name inside a zip; None for a plain JSON file
    payload: bytes | None
    problems: list[str] = field(default_factory=list)


def read_submission(path: str | Path) -> Container:
    """Read a plain JSON file, or a zip that must hold exactly one JSON file (and nothing else)."""
    path = Path(path)
    data = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return Container(path, None, data)
    problems = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            files = [i for i in infos if not i.is_dir()]
            dirs = [i.filename for i in infos if i.is_dir()]
            if dirs:
                problems.append(f"the zip holds folder entries {dirs}; it must hold one JSON file only")
            jsons = [i for i in files if i.filename.lower().endswith(".json")]
            others = [i.filename for i in files if not i.filename.lower().endswith(".json")]
            if others:
                problems.append(f"the zip holds non-JSON files {others[:5]}; it must hold one JSON file only")
            if len(jsons) != 1:
                problems.append(f"the zip must hold exactly one .json file, it holds {len(jsons)}"
                                + (f": {[i.filename for i in jsons][:5]}" if jsons else ""))
                return Container(path, None, None, problems)
            member = jsons[0]
            if "/" in member.filename:
                problems.append(f"the JSON file {member.filename!r} is inside a folder of the zip; "
                                "put it at the top level")
            payload = archive.read(member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as error:
        return Container(path, None, None, [f"unreadable zip: {error}"])
    return Container(path, member.filename, payload, problems)
