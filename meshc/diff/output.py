"""How a diff prints: text grouped by section (coloured on request), JSON (a stable
schema, documented in docs/operations.md) and Markdown for a pull-request comment."""

from __future__ import annotations

import json

from meshc.diff.findings import SECTIONS, Finding, Report, names

_COLORS = {"safe": "\x1b[32m", "restart": "\x1b[33m", "breaks": "\x1b[1;31m"}
_RESET = "\x1b[0m"
VERDICTS = {
    "safe": "safe to apply while it runs",
    "restart": "needs restarts",
    "breaks": "breaks in-flight work",
}


def label(f: Finding) -> str:
    """The level to show: ``breaks?`` while it depends on a server not read yet."""
    return f"{f.effective}?" if f.depends else f.effective


def format_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True, ensure_ascii=False)


def format_text(report: Report, color: bool = False) -> str:
    def paint(text: str, level: str) -> str:
        return f"{_COLORS[level]}{text}{_RESET}" if color else text

    lines = [_title(report), *_sources(report)]
    for kind, title in SECTIONS.items():
        found = [f for f in report.findings if f.kind == kind]
        if found:
            lines += ["", title]
        for message, f in fold(found):
            lines.append(f"  {paint(label(f).ljust(8), f.effective)} {message}  [{f.rule}]")
            lines += [f"           {line}" for line in _details(f)]
    lines += ["", *_summary(report)]
    if color:
        verdict = VERDICTS[report.level]
        lines[0] = lines[0].replace(verdict, paint(verdict, report.level))
    return "\n".join(lines)


def fold(findings: list[Finding]) -> list[tuple[str, Finding]]:
    """One line for the findings that say the same of several subjects (a default
    policy changed for every agent): ``agents `a`, `b` and `c`: policy …``."""
    groups: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        template = f.message.replace(f"`{f.subject}`", "{}", 1)
        key = (template, f.rule, label(f), *_details(f))
        groups.setdefault(key, []).append(f)
    out = []
    for (template, *_), group in groups.items():
        if len(group) == 1 or "{}" not in template:
            out += [(f.message, f) for f in group]
            continue
        plural = template.replace("agent {}", "agents {}", 1).replace("stream {}", "streams {}", 1)
        out.append((plural.replace("{}", names(f.subject for f in group), 1), group[0]))
    return out


def _title(report: Report) -> str:
    old, new = report.old, report.new
    name = old.mesh if old.mesh == new.mesh else f"{old.mesh} → {new.mesh}"
    return f"meshc diff: {name} v{old.version} → v{new.version}: {VERDICTS[report.level]}"


def _sources(report: Report) -> list[str]:
    server = report.server or (
        "none read: a finding marked `?` depends on what the server holds (give --redis URL)"
    )
    return [f"  old: {report.old.file}", f"  new: {report.new.file}", f"  server: {server}"]


def _details(f: Finding) -> list[str]:
    out = []
    if f.depends:
        out.append(f"{f.level} {f.depends}")
    elif f.held is not None:
        out.append(("held: " if f.held else "clear: ") + "; ".join(f.evidence))
    if f.reason:
        out.append(f"why: {f.reason}")
    if f.advice:
        out.append(f"do: {f.advice}")
    return out


def _summary(report: Report) -> list[str]:
    counts = report.counts()
    total = sum(counts.values())
    if not total:
        return ["no changes"]
    open_ = sum(1 for f in report.findings if f.depends)
    parts = [f"{counts[lv]} {lv}" for lv in ("breaks", "restart", "safe") if counts[lv]]
    line = f"{total} change{'s' if total != 1 else ''}: {', '.join(parts)}"
    if open_:
        line += f" ({open_} depending on the server)"
    acts = [f"{k}: {', '.join(v)}" for k, v in report.actions().items() if v]
    return [line, *(["; ".join(acts)] if acts else [])]


def format_markdown(report: Report) -> str:
    """One table, for a pull-request comment (``|`` escaped inside cells)."""
    old, new = report.old, report.new
    lines = [
        f"### `meshc diff`: `{new.mesh}` v{old.version} → v{new.version}: "
        f"**{VERDICTS[report.level]}**",
        "",
    ]
    open_ = sum(1 for f in report.findings if f.depends)
    if report.server is None and open_:
        lines += [
            f"No server was read: {open_} finding(s) depend on what it holds "
            "(`meshc diff OLD NEW --redis URL` settles them).",
            "",
        ]
    if not report.findings:
        return "\n".join([*lines, "No changes."])
    lines += ["| level | change | why | what to do |", "|---|---|---|---|"]
    for message, f in fold(report.findings):
        level = f"**{label(f)}** {f.depends}".rstrip()
        why = f.reason + (f" (seen: {'; '.join(f.evidence)})" if f.evidence else "")
        lines.append("| " + " | ".join(_cell(c) for c in (level, message, why, f.advice)) + " |")
    acts = [
        f"**{k.capitalize()}:** {', '.join(f'`{a}`' for a in v)}"
        for k, v in report.actions().items()
        if v
    ]
    if acts:
        lines += ["", " · ".join(acts)]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "
