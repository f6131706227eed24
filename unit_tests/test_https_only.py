"""Airbyte's connector QA check "Connectors must use HTTPS only" (airbyte-ci's connectors_qa,
`checks/security.py`, `CheckConnectorUsesHTTPSOnly`), replayed on this connector: every file of the
connector's directory, outside the folders and files the check skips, read line by line, lowercased;
a comment line (by the file's suffix) or a line holding the `# ignore-https-check` marker passes;
`http://json-schema.org` and `http://localhost` are struck out; any `http://` left fails the check.

Use `https://` in docstrings and examples, and the marker where a local URL is the point.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The check's own rules, as it states them.
IGNORE_COMMENT = "# ignore-https-check"
IGNORED_DIRECTORIES = {
    ".venv", "tests", "unit_tests", "integration_tests", "build", "source-file", ".pytest_cache",
    "acceptance_tests_logs", ".hypothesis", ".ruff_cache",
}  # fmt: skip
IGNORED_FILE_NAME_PATTERNS = {"*Test.java", "*.jar", "*.pyc", "*.gz", "*.svg", "expected_records.jsonl", "expected_records.json"}
IGNORED_URL_PREFIXES = {"http://json-schema.org", "http://localhost"}
COMMENT_BY_SUFFIX = {".py": "#", ".yml": "#", ".yaml": "#", ".java": "//", ".md": "<!--"}

# What the check would find here that is not the connector: the repository's own tooling, which a
# connector's directory in Airbyte does not hold. The emulator is a stand-in for Klaviyo that speaks
# plain HTTP on 127.0.0.1; the bench (and BENCHMARKS.md, its report) and the demo drive it; testkit
# is the tests' shared kit; Airbyte keeps a connector's documentation in its own docs tree.
NOT_THE_CONNECTOR = {"klaviyo_emulator", "bench", "demo", "testkit", "docs", "BENCHMARKS.md"}


def _ignored_by_git(relative: Path, patterns: list[str]) -> bool:
    """What a clean clone does not have (the .gitignore's patterns, all of them names or globs)."""
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in patterns + [".git"])


def connector_files(directory: Path) -> Iterator[Path]:
    gitignore = directory / ".gitignore"
    patterns = [
        line.strip().rstrip("/") for line in (gitignore.read_text().splitlines() if gitignore.exists() else [])
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or _ignored_by_git(relative, patterns) or relative.parts[0] in NOT_THE_CONNECTOR:
            continue
        if any(part in IGNORED_DIRECTORIES for part in relative.parts):
            continue
        if any(path.match(pattern) for pattern in IGNORED_FILE_NAME_PATTERNS):
            continue
        yield path


def http_lines(directory: Path) -> list[str]:
    """The lines the check fails on, as ``path:line: text``."""
    failing = []
    for path in connector_files(directory):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:  # the check skips a file it cannot read as text
            continue
        comment = COMMENT_BY_SUFFIX.get(path.suffix)
        for number, original in enumerate(lines, start=1):
            line = original.lower()
            if comment and line.lstrip().startswith(comment):
                continue
            if IGNORE_COMMENT in line:
                continue
            for prefix in IGNORED_URL_PREFIXES:
                line = line.replace(prefix, "")
            if "http://" in line:
                failing.append(f"{path.relative_to(directory)}:{number}: {original.strip()}")
    return failing


def test_the_connector_uses_https_only() -> None:
    failing = http_lines(REPO)
    assert failing == [], "Airbyte's QA check would fail on:\n" + "\n".join(failing)


def test_the_check_is_replayed_as_it_reads_each_line(tmp_path: Path) -> None:
    (tmp_path / "source_x").mkdir()
    (tmp_path / "source_x" / "components.py").write_text(
        '# http://a comment\n'
        'URL = "HTTP://plain"\n'
        'LOCAL = "http://127.0.0.1:8765"  # ignore-https-check\n'
        'SCHEMA = "http://json-schema.org/draft-07/schema#"\n'
        '"""A docstring: http://127.0.0.1"""\n'
    )  # fmt: skip
    (tmp_path / "source_x" / "manifest.yaml").write_text("url_base: http://localhost:8000\nurl: http://host\n")
    (tmp_path / "README.md").write_text("<!-- http://in a comment -->\nsee http://host\n")
    (tmp_path / "Dockerfile").write_text("# http://no comments in a Dockerfile for the check\n")
    (tmp_path / "unit_tests").mkdir()
    (tmp_path / "unit_tests" / "test_x.py").write_text('URL = "http://skipped"\n')
    (tmp_path / "icon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    assert http_lines(tmp_path) == [
        "Dockerfile:1: # http://no comments in a Dockerfile for the check",
        "README.md:2: see http://host",
        'source_x/components.py:2: URL = "HTTP://plain"',
        'source_x/components.py:5: """A docstring: http://127.0.0.1"""',
        "source_x/manifest.yaml:2: url: http://host",
    ]
