"""The institution's own rows, read with the federation's public data schema (dpfed-data-schema/1).

Each feature is clipped to its public bounds, optionally passed through log1p, then mapped by a fixed
affine map: (t - centre) / scale when the schema declares both, else the transformed bounds onto [-1, 1].
An empty cell becomes the declared `missing` raw value, or input 0. Nothing is fitted on the data, so the
preprocessing of a row depends on that row alone. schema_hash() is the SHA-256 that RegisterRequest.schema_hash
carries (the same bytes as proto/data-schema.ts schemaHash).
"""
import csv
import hashlib
import hmac
import json
import math
from decimal import Decimal

SCHEMA_FORMAT = "dpfed-data-schema/1"


class DataError(Exception):
    pass


def read_schema(path):
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    if schema.get("format") != SCHEMA_FORMAT:
        raise DataError('%s: "format" must be "%s"' % (path, SCHEMA_FORMAT))
    columns = schema.get("columns")
    if not isinstance(columns, list) or not columns:
        raise DataError('%s: "columns" must be a non-empty array' % path)
    if sum(1 for c in columns if c.get("type") == "label") != 1:
        raise DataError('%s: exactly one column must have type "label"' % path)
    for i, c in enumerate(columns):
        if c.get("type") == "number":
            lo, hi = c["bounds"]
            if not lo < hi:
                raise DataError("%s: column %d %r: bounds min must be below max" % (path, i + 1, c.get("name")))
        elif c.get("type") != "label":
            raise DataError('%s: column %d %r: type must be "number" or "label"' % (path, i + 1, c.get("name")))
    return schema


def _js_number(x):
    """A number as JavaScript's JSON.stringify writes it (shortest round-trip digits, JS exponent rules)."""
    if isinstance(x, bool):
        raise DataError("schema: a boolean where a number belongs")
    if isinstance(x, int):
        x = float(x)
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    digits_tuple = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    k = len(digits)
    n = digits_tuple.exponent + k  # the decimal point sits after n digits
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return sign + mantissa + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _js_json(value):
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return _js_number(value)
    return "[" + ",".join(_js_json(v) for v in value) + "]"


def schema_hash(schema):
    """SHA-256 of JSON [format, [per column: [name, "label"] or [name, "number", min, max, transform, centre, scale, missing]]]."""
    rows = []
    for c in schema["columns"]:
        if c["type"] == "label":
            rows.append([c["name"], "label"])
        else:
            rows.append([c["name"], "number", c["bounds"][0], c["bounds"][1], c.get("transform", "none"),
                         c.get("centre"), c.get("scale"), c.get("missing")])
    return hashlib.sha256(_js_json([SCHEMA_FORMAT, rows]).encode("utf-8")).digest()


def _feature_map(c):
    log1p = c.get("transform", "none") == "log1p"
    lo, hi = c["bounds"]
    t = math.log1p if log1p else (lambda v: v)
    if "centre" in c:
        a, b = 1.0 / c["scale"], -c["centre"] / c["scale"]
    else:
        a = 2.0 / (t(hi) - t(lo))
        b = -1.0 - t(lo) * a

    def mapped(raw):
        clipped = lo if raw < lo else hi if raw > hi else raw
        return a * t(clipped) + b

    missing = mapped(c["missing"]) if "missing" in c else 0.0
    return mapped, missing


def load_rows(csv_path, schema):
    """(features, labels): one list of floats per row, labels 0/1. Errors name the line and the column."""
    columns = schema["columns"]
    maps = [(_feature_map(c) if c["type"] == "number" else None) for c in columns]
    features, labels = [], []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        expected = [c["name"] for c in columns]
        if header != expected:
            raise DataError("%s line 1: the header must name the schema's columns in order: %s" % (csv_path, ",".join(expected)))
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(columns):
                raise DataError("%s line %d: expected %d cells, got %d" % (csv_path, line, len(columns), len(row)))
            x, y = [], None
            for cell, c, m in zip(row, columns, maps):
                text = cell.strip()
                if m is None:
                    if text not in ("0", "1"):
                        raise DataError("%s line %d column %r: the label must be 0 or 1, got %r" % (csv_path, line, c["name"], text[:20]))
                    y = int(text)
                    continue
                mapped, missing = m
                if text == "":
                    x.append(missing)
                    continue
                try:
                    value = float(text)
                except ValueError:
                    raise DataError("%s line %d column %r: not a number: %r" % (csv_path, line, c["name"], text[:20]))
                if not math.isfinite(value):
                    raise DataError("%s line %d column %r: not a finite number" % (csv_path, line, c["name"]))
                x.append(mapped(value))
            features.append(x)
            labels.append(y)
    if not features:
        raise DataError("%s: no data rows" % csv_path)
    return features, labels


def split_rows(features, labels, key, validation_fraction=0.2):
    """A per-row keyed split: HMAC-SHA256(key, the row's values) decides, so each row's side depends on that row only."""
    train, validation = ([], []), ([], [])
    for x, y in zip(features, labels):
        digest = hmac.new(key, json.dumps([x, y]).encode(), hashlib.sha256).digest()
        side = validation if int.from_bytes(digest[:4], "big") / 2 ** 32 < validation_fraction else train
        side[0].append(x)
        side[1].append(y)
    return train, validation
