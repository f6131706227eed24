"""The README states one Python range, and it is the one `setup.py` and the Makefile enforce."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [f"3.{minor}" for minor in range(6, 20)]


def readme_range() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.findall(r"\*\*Python (3\.\d+), (3\.\d+) or (3\.\d+)\*\*", readme)
    assert len(stated) == 1, "the README states its Python range once, in bold"
    return set(stated[0])


def setup_range() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    requires = next(
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "python_requires" and isinstance(keyword.value, ast.Constant)
    )
    return {version for version in CANDIDATES if SpecifierSet(requires).contains(f"{version}.0")}


def makefile_range() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    accepted = re.search(r'case "\$\$version" in ([0-9.*|]+)\)', makefile)
    assert accepted, "the Makefile checks the Python version before it creates .venv"
    return {pattern.removesuffix(".*") for pattern in accepted.group(1).split("|")}


def test_the_readme_states_the_python_range_setup_py_and_the_makefile_enforce() -> None:
    assert readme_range() == setup_range() == makefile_range()


def test_no_other_python_version_in_the_readme_is_said_to_work() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    supported = readme_range()
    # Versions named as ones to use (`PYTHON=python3.12`) must be supported ones.
    named = set(re.findall(r"PYTHON=python(3\.\d+)", readme))
    assert named and named <= supported
