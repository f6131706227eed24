"""The one renderer: BENCHMARKS.md from the sections' tables and gates and the hand-written notes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from bench.sections import Gate, Section, Table

NOTES = Path(__file__).with_name("notes.md")


def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(table.headers) + " |", "|" + "---|" * len(table.headers)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def notes() -> dict[str, str]:
    """``bench/notes.md`` split at its ``## `` headings: the text under each, by heading ("" before the first)."""
    parts: dict[str, str] = {}
    heading, lines = "", list[str]()
    for line in NOTES.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            parts[heading] = "\n".join(lines).strip()
            heading, lines = line[3:].strip(), []
        else:
            lines.append(line)
    parts[heading] = "\n".join(lines).strip()
    return parts


def render(sections: Sequence[Section], run: Table, failures: Sequence[Gate]) -> str:
    """The whole file: the notes' introduction, the run's facts, every gate, then each section's notes
    and tables, in the order given."""
    text = notes()
    gates = Table(["gate", "measured", "limit", "verdict"],
                  [[gate.what, gate.measured, gate.limit, "pass" if gate.passed else "**FAIL**"]
                   for section in sections for gate in section.gates])
    out = ["# Benchmarks", "", text[""], "", markdown_table(run), "",
           "## Verdict", "", f"**{'FAIL' if failures else 'PASS'}**: {len(failures)} of {len(gates.rows)} gates failed.",
           "", markdown_table(gates)]
    for section in sections:
        out += ["", f"## {section.title}", ""]
        if text.get(section.title):
            out += [text[section.title], ""]
        for table in section.tables:
            out += [markdown_table(table), ""]
        out.pop()
    return "\n".join(out).rstrip() + "\n"
