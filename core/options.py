"""`KEY=VALUE` options (`--set` of `python -m extract` and `python -m model train`): one parser.

    options = parse_options(SomeOptions, ["batch_size=8", "precision=fp16"])

Keys are the fields of an options dataclass; values are coerced to the field's type (int, float,
bool, str, `int | None`). A dict field takes one entry per `PREFIX.NAME=VALUE` pair when the
caller maps PREFIX to it (`keyed={"max_elements": "max_elements_by"}`). Unknown keys and values
of the wrong type are refused, naming the pair. Keys and values are stripped of spaces. Range and
choice checks stay with the options class (its `validate`), once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence, TypeVar

T = TypeVar("T")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _kind(field_type: Any) -> str:
    """A field's type as written (`from __future__ import annotations`) or its class's name."""
    return field_type if isinstance(field_type, str) else getattr(field_type, "__name__", str(field_type))


def coerce(key: str, text: str, kind: str) -> Any:
    """`text` as the type named `kind`; ValueError naming `--set KEY=TEXT` otherwise."""
    value = text.strip()
    try:
        if kind.startswith("int | None"):
            return None if value.lower() in ("", "none", "null") else int(value)
        if kind in ("int", "dict[str, int]"):
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if value.lower() in TRUE:
                return True
            if value.lower() in FALSE:
                return False
            raise ValueError(value)
    except ValueError:
        raise ValueError(f"--set {key}={text}: expected {kind.removeprefix('dict[str, ').rstrip(']')}") from None
    return value


def parse_options(cls: type[T], pairs: Sequence[str], base: T | None = None,
                  keyed: Mapping[str, str] | None = None) -> T:
    """A copy of `base` (default: `cls()`) with the `KEY=VALUE` pairs applied; `keyed` maps a
    prefix to a dict field set per name (`PREFIX.NAME=VALUE`)."""
    keyed = dict(keyed or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    options = dataclasses.replace(base) if base is not None else cls()
    for name in keyed.values():  # never share a dict with `base`
        setattr(options, name, dict(getattr(options, name)))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--set {pair!r}: write KEY=VALUE")
        prefix, dot, name = key.partition(".")
        if dot and prefix in keyed and name:
            field = keyed[prefix]
            getattr(options, field)[name] = coerce(key, value, _kind(fields[field].type))
            continue
        if key not in fields or key in keyed.values():
            known = sorted(k for k in fields if k not in keyed.values()) + [f"{p}.NAME" for p in keyed]
            raise ValueError(f"--set {key}: unknown option; known options: {', '.join(known)}")
        setattr(options, key, coerce(key, value, _kind(fields[key].type)))
    return options
