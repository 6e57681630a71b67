"""The mesh language reference, made from the JSON Schema that ``meshc schema`` prints.

Every key of a mesh file and of each object in it (agent, stream, lane family, join,
policy, model settings…), with its type, default, bounds and description, as the
validator's own models declare them: the reference cannot drift from what
``meshc validate`` accepts.
"""

from __future__ import annotations

import json
from typing import Any

from meshc.commands.schema import schema_text

_BOUNDS = (
    ("minimum", "at least"),
    ("maximum", "at most"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minItems", "{} or more items"),
)


def _type(node: dict[str, Any]) -> str:
    """A schema node as words: ``string``, ``list of string``, ``mapping of name → Agent``."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in node:
        return " or ".join(_type(n) for n in node["anyOf"])
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    kind = node.get("type", "any")
    if kind == "array":
        return "list of " + _type(node.get("items", {}))
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "mapping of name → " + _type(node["additionalProperties"])
    return "null" if kind == "null" else str(kind)


def _constraints(node: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for option in [node, *node.get("anyOf", [])]:
        for key, words in _BOUNDS:
            if key in option:
                value = option[key]
                out.append(words.format(value) if "{}" in words else f"{words} {value}")
        if "pattern" in option:
            out.append(f"matches `{option['pattern']}`")
    return out


def _fields(node: dict[str, Any]) -> list[str]:
    required = set(node.get("required", []))
    lines = []
    for name, prop in sorted(node.get("properties", {}).items()):
        facts = [_type(prop), "required" if name in required else ""]
        if "default" in prop and prop["default"] not in (None, "", [], {}):
            facts.append(f"default `{json.dumps(prop['default'])}`")
        facts += _constraints(prop)
        text = f"- **`{name}`** ({', '.join(f for f in facts if f)})"
        if prop.get("description"):
            text += ": " + prop["description"]
        lines.append(text)
    return lines


def _closed(node: dict[str, Any]) -> str:
    return "No other key is allowed." if node.get("additionalProperties") is False else ""


def language_page() -> dict[str, bytes]:
    """{"mesh-language.md": page}."""
    schema = json.loads(schema_text())
    lines = [
        "# The mesh language",
        "",
        "Every key a mesh file may hold, made from `schemas/mesh.schema.json` (the output",
        "of `meshc schema`; `python docs/gen.py` refreshes this page). Types are as a",
        "mesh file writes them; durations are `500ms`, `30s`, `2m`, `1h` or seconds. What",
        "the schema cannot say (one writer per stream, no cycles, types that fit) is",
        "checked by `meshc validate`: see the [diagnostic codes](diagnostics/index.md).",
        "",
        "## The file",
        "",
        schema.get("description", ""),
        "",
        *_fields(schema),
        "",
        _closed(schema),
    ]
    for name, node in sorted(schema.get("$defs", {}).items()):
        lines += ["", f"## {name}", ""]
        if node.get("description"):
            lines += [node["description"], ""]
        if "properties" in node:
            lines += [*_fields(node), "", _closed(node)]
        else:
            lines += [f"A value: {_type(node)}."]
    text = "\n".join(lines).rstrip("\n") + "\n"
    return {"mesh-language.md": text.replace("\n\n\n", "\n\n").encode("utf-8")}
