"""BENCHMARKS.md is written whole by ``make bench`` (bench/render.py): it holds measured figures and
hand-written text only, so no blank placeholder and no name of code that is gone."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # bench/tests/ -> the repository
BENCHMARKS = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
# A figure left blank: a lone "?" (e.g. "? µs per record", "| ? |"), or a Python None / nan printed as one.
PLACEHOLDER = re.compile(r"(?:^|[\s|(~])(?:\?|None|nan)(?=$|[\s|,.;:)])", re.MULTILINE)
# Code the file names: `bench.module.name` and `bench/file.py`.
DOTTED = re.compile(r"`(bench(?:\.\w+)+)`")
PATH = re.compile(r"`((?:bench|klaviyo_emulator|source_klaviyo_segments)/[\w./]+)`")


def test_benchmarks_has_no_placeholder() -> None:
    found = [BENCHMARKS[max(0, m.start() - 40): m.end() + 20].strip() for m in PLACEHOLDER.finditer(BENCHMARKS)]
    assert not found, f"BENCHMARKS.md has blank figures, e.g. {found[:3]}: rerun `make bench`"


@pytest.mark.parametrize("name", sorted(set(DOTTED.findall(BENCHMARKS))))
def test_benchmarks_names_code_that_exists(name: str) -> None:
    module_name, _, attribute = name.rpartition(".")
    for candidate, part in ((name, None), (module_name, attribute)):
        try:
            module = importlib.import_module(candidate)
        except ImportError:
            continue
        if part is None or hasattr(module, part):
            return
    pytest.fail(f"BENCHMARKS.md names {name}, which is gone: rerun `make bench` or fix bench/notes.md")


@pytest.mark.parametrize("path", sorted(set(PATH.findall(BENCHMARKS))))
def test_benchmarks_names_files_that_exist(path: str) -> None:
    assert (ROOT / path).exists(), f"BENCHMARKS.md names {path}, which is gone"
