"""Can a reader of one version read what a writer of another wrote? On type forms.

A form (``StreamSpec.form``) is the canonical tree of a stream's type. The rules are
those of docs/compatibility.md, for the generated models: unknown fields are refused,
``T | None`` is the only optional, ``int`` reads ``bool``, ``float`` reads ``int`` and
``bool``, ``any`` reads everything. A worker uses them to decide, when its build's
fingerprint of a stream differs from the one the server records, whether it may start.
"""

from __future__ import annotations

from typing import Any

import orjson

WIDENS = {("bool", "int"), ("bool", "float"), ("int", "float")}


def problems(writer: str, reader: str) -> list[str]:
    """Why entries of form ``writer`` do not all fit form ``reader`` (empty: they do)."""
    out: list[str] = []
    _check(orjson.loads(writer), orjson.loads(reader), "", out)
    return out


def _check(w: Any, r: Any, at: str, out: list[str]) -> None:
    where = f"`{at}`" if at else "the payload"
    if w == r or r == "any":
        return
    if _recursive(w) or _recursive(r):  # a back-reference to an enclosing object
        out.append(f"{where} changed shape (a recursive type changed)")
        return
    if isinstance(r, list) and r[0] == "optional":
        _check(w[1] if isinstance(w, list) and w[0] == "optional" else w, r[1], at, out)
        return
    if isinstance(w, list) and w[0] == "optional":
        out.append(f"{where} may be null, which the reader refuses")
    elif isinstance(w, str) and isinstance(r, str):
        if (w, r) not in WIDENS:
            out.append(f"{where} is {w} where the reader wants {r}")
    elif isinstance(w, dict) and isinstance(r, dict):
        _fields(dict(w["fields"]), dict(r["fields"]), f"{at}." if at else "", out)
    elif isinstance(w, list) and isinstance(r, list) and w[0] == r[0]:
        _check(w[1], r[1], f"{at}[]" if at else "[]", out)
    else:
        out.append(f"{where} changed shape ({_kind(w)} to {_kind(r)})")


def _fields(w: dict[str, Any], r: dict[str, Any], at: str, out: list[str]) -> None:
    for name in w:
        if name not in r:
            out.append(f"field `{at}{name}` is unknown to the reader")
    for name, form in r.items():
        if name in w:
            _check(w[name], form, f"{at}{name}", out)
        elif not (isinstance(form, list) and form[0] == "optional"):
            out.append(f"required field `{at}{name}` is missing")


def _recursive(form: Any) -> bool:
    return isinstance(form, list) and form[0] == "rec"


def _kind(form: Any) -> str:
    if isinstance(form, dict):
        return "object"
    return str(form[0] if isinstance(form, list) else form)
