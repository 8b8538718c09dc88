"""`python -m extract.inspect STORE.h5 [ID]`: a store's summary, or one sample's rows.

The summary prints every attr of the store (provenance first: what ran, from what, what differs
from the paper; JSON values folded to `WIDTH` columns), says "random weights" above all else when
the store was built with `pretrained: false`, then row counts, a histogram of rows per sample, the
columns and the first failures. Neither mode loads the store's columns: a summary reads ids,
offsets and attrs, a sample its own rows.

Failures are one line on stderr naming the fix, exit status 1, no traceback: a missing file, a
file that is not a store or is incomplete (truncated, or its writer died), an id the store lacks
(with the nearest ids). Output cut short by its reader (`| head`) ends quietly (status 1, as
Python's own convention for a broken pipe).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import textwrap
from typing import Any, Sequence

import numpy as np

from extract.hub import parse_pretrained
from extract.store import INCOMPLETE, StoreError, column_info, read_attrs, read_sample, read_store

WIDTH = 100  # columns the folded attrs fit in
KEY = 19  # width of the attr-name column (with its space)
# provenance first, in this order; the other attrs follow by name
FIRST = ("format", "version", "extractor", "backend", "feature", "input", "model", "substitute", "weights",
         "dim", "config", "preprocess", "precision", "precision_check")
NEAR_LIMIT = 200_000  # ids searched for near matches by edit similarity (beyond: case and zero padding only)


def random_weights(attrs: dict[str, Any]) -> bool:
    """Whether the store was built with `pretrained: false` (its features carry no learned meaning)."""
    try:
        config = json.loads(attrs.get("config", "{}"))
    except (TypeError, ValueError):
        return False
    return "pretrained" in config and parse_pretrained(str(config["pretrained"])) is False


def _value(value: Any) -> Any:
    """An attr as a Python value: JSON text parsed (lists and objects only), numpy scalars unwrapped."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def fold(key: str, value: Any) -> list[str]:
    """`key  value` lines, the value wrapped to `WIDTH` columns under itself."""
    value = _value(value)
    lead = " " * (KEY + 2)
    if key == "weights" and isinstance(value, list):  # each file, then its full sha256 under it
        return [line for w in value for line in (f"  {key:<{KEY}}{w.get('file', '?')}",
                                                 f"{lead}sha256 {w.get('sha256', '?')}")] or \
               [f"  {key:<{KEY}}[] (none: random weights, or no model)"]
    text = json.dumps(value, separators=(", ", ": ")) if isinstance(value, (dict, list)) else str(value)
    return textwrap.wrap(text, WIDTH, initial_indent=f"  {key:<{KEY}}", subsequent_indent=lead,
                         break_on_hyphens=False, break_long_words=True) or [f"  {key:<{KEY}}"]


def attr_lines(attrs: dict[str, Any]) -> list[str]:
    keys = [k for k in FIRST if k in attrs] + sorted(k for k in attrs if k not in FIRST)
    return [line for key in keys for line in fold(key, attrs[key])]


def summary(path: str) -> str:
    s = read_store(path, columns=[])
    lines = [f"{path}"]
    if random_weights(s.attrs):
        lines.append("  RANDOM WEIGHTS: built with pretrained: false; its features carry no learned meaning")
    lines += attr_lines(s.attrs)
    counts = s.counts
    lines.append(f"  {'samples':<{KEY}}{len(s)}  rows {int(s.offsets[-1])}")
    if len(s):
        hist = np.bincount(np.minimum(counts, 10), minlength=11)
        lines.append(f"  {'rows per sample':<{KEY}}min {counts.min()}  mean {counts.mean():.2f}  max {counts.max()}  "
                     f"(empty: {int((counts == 0).sum())})")
        lines.append(f"  {'histogram':<{KEY}}" + "  ".join(f"{k}{'+' if k == 10 else ''}:{v}"
                                                          for k, v in enumerate(hist) if v))
    rows = json.loads(s.attrs.get("row_columns", "[]"))
    for name, (dtype, shape) in column_info(path).items():
        kind = "row column" if name in rows else "sample column"
        lines.append(f"  {kind:<{KEY}}{name:<12} {dtype} {shape}")
    lines.append(f"  {'failed':<{KEY}}{len(s.failed)}")
    for sid, reason in list(s.failed.items())[:10]:
        lines.append(f"    {sid}: {reason}")
    return "\n".join(lines)


def one_sample(path: str, sample_id: str) -> str:
    values = read_sample(path, sample_id)
    rows = json.loads(read_attrs(path).get("row_columns", "[]"))
    count = len(values[rows[0]]) if rows else 0
    np.set_printoptions(precision=4, suppress=True, threshold=40, edgeitems=4)
    lines = [f"{path} sample {sample_id}: {count} rows"]
    for name, value in values.items():
        lines.append(f"  {name}: {value if not isinstance(value, np.ndarray) else repr(value)}")
    return "\n".join(lines)


def near_ids(ids: Sequence[str], wanted: str, n: int = 3) -> list[str]:
    """Ids that `wanted` may have meant: the same but for case, spaces or zero padding first, then
    the most similar (difflib, on stores of up to `NEAR_LIMIT` ids)."""
    def norm(x: str) -> str:
        return x.strip().lower().lstrip("0")
    key = norm(wanted)
    same = [i for i in ids if norm(i) == key][:n]
    if len(same) >= n or len(ids) > NEAR_LIMIT:
        return same
    return same + [i for i in difflib.get_close_matches(wanted, list(ids), n=n) if i not in same][:n - len(same)]


def missing_id(path: str, sample_id: str) -> str:
    ids = read_store(path, columns=[]).ids
    near = near_ids(ids, sample_id)
    hint = f"; nearest ids: {', '.join(near)}" if near else ""
    return (f"sample {sample_id!r} is not in {path} ({len(ids)} samples{hint}); run without an id for the "
            "summary, or give an id of the manifest it was extracted from")


class Refused(Exception):
    """What `main` prints as its one-line error."""


def report(path: str, sample_id: str | None) -> str:
    """The text to print; `Refused` with the one-line error when there is none."""
    try:
        return one_sample(path, sample_id) if sample_id is not None else summary(path)
    except KeyError:
        raise Refused(missing_id(path, sample_id)) from None
    except (FileNotFoundError, StoreError) as err:
        raise Refused(str(err)) from None
    except OSError as err:  # a read that fails inside the file: damaged or cut short
        raise Refused(f"{path}: cannot read the store ({err}): {INCOMPLETE}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extract.inspect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("id", nargs="?")
    args = p.parse_args(argv)
    try:
        text = report(args.store, args.id)
    except Refused as err:
        print(f"python -m extract.inspect: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (head) has gone: say nothing more, not even at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
