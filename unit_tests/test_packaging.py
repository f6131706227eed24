"""Packaging: metadata.yaml, the Dockerfile, the docs and the changelog agree with each other and with
setup.py; the manifest is valid for the installed CDK; and the Dockerfile's install, replayed without
Docker, yields a package that answers ``spec``."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from airbyte_cdk.models.connector_metadata import ConnectorLanguage, MetadataFile
from airbyte_cdk.sources.declarative.parsers.manifest_component_transformer import ManifestComponentTransformer
from airbyte_cdk.sources.declarative.parsers.manifest_reference_resolver import ManifestReferenceResolver
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "source_klaviyo_segments"
DIGEST_PINNED = re.compile(r"^docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


# --- helpers -------------------------------------------------------------------------------------


def _metadata() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "metadata.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _setup_version() -> str:
    match = re.search(r'^VERSION\s*=\s*"([^"]+)"', (ROOT / "setup.py").read_text(encoding="utf-8"), re.MULTILINE)
    assert match, 'setup.py has no VERSION = "..." line'
    return match.group(1)


def _docs_changelog_rows() -> list[list[str]]:
    """The rows of the docs' ``| Version | Date | Pull Request | Subject |`` table, in file order."""
    lines = (ROOT / "docs" / "klaviyo-segments.md").read_text(encoding="utf-8").splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None for line in lines]
    for i, row in enumerate(cells):
        if row == ["Version", "Date", "Pull Request", "Subject"]:
            body = []
            for later in cells[i + 2 :]:  # skip the |---| separator
                if later is None:
                    break
                body.append(later)
            return body
    raise AssertionError("docs/klaviyo-segments.md has no | Version | Date | Pull Request | Subject | table")


def _changelog_headings() -> list[tuple[str, str]]:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return re.findall(r"^## (\d+\.\d+\.\d+) \((\d{4}-\d{2}-\d{2})\)\s*$", text, re.MULTILINE)


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends in a line continuation"
    return instructions


def _only(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [args for kw, args in instructions if kw == keyword]
    assert len(found) == 1, f"expected one {keyword} in the Dockerfile, found {len(found)}"
    return found[0]


def _dockerfile_base_image(instructions: list[tuple[str, str]]) -> str:
    args = dict(a.split("=", 1) for kw, a in instructions if kw == "ARG" and "=" in a)
    image = _only(instructions, "FROM").split()[0]
    return re.sub(r"^\$\{?(\w+)\}?$", lambda m: args.get(m.group(1), m.group(0)), image)


def _labels(instructions: list[tuple[str, str]]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for kw, args in instructions:
        if kw == "LABEL":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                labels[key] = value
    return labels


def _spec_messages(stdout: str) -> list[dict[str, Any]]:
    messages = []
    for line in stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") == "SPEC":
            messages.append(message)
    return messages


# --- metadata.yaml -------------------------------------------------------------------------------


def test_spec_and_metadata_point_to_the_same_docs() -> None:
    # PyAirbyte and the platform show either one in their errors.
    assert _manifest()["spec"]["documentation_url"] == _metadata()["data"]["documentationUrl"]


def test_metadata_has_every_registry_field() -> None:
    metadata = _metadata()
    assert metadata["metadataSpecVersion"] == "1.0"  # a string, not the float 1.0
    data = metadata["data"]
    expected = {
        "connectorType": "source",
        "connectorSubtype": "api",
        "dockerRepository": "airbyte/source-klaviyo-segments",
        "documentationUrl": "https://docs.airbyte.com/integrations/sources/klaviyo-segments",
        "icon": "icon.svg",
        "license": "MIT",
        "name": "Klaviyo Segments",
        "releaseStage": "alpha",
        "supportLevel": "community",
    }
    for key, value in expected.items():
        assert data.get(key) == value, key
    assert isinstance(data["githubIssueLabel"], str) and data["githubIssueLabel"]
    assert isinstance(data["dockerImageTag"], str) and SEMVER.match(data["dockerImageTag"])
    assert data["tags"] == ["language:python", "cdk:low-code"]
    assert data["registryOverrides"]["cloud"]["enabled"] is True
    assert data["registryOverrides"]["oss"]["enabled"] is True
    assert data["remoteRegistries"]["pypi"] == {"enabled": True, "packageName": "source-klaviyo-segments"}
    suites = [s["suite"] for s in data["connectorTestSuitesOptions"]]
    assert set(suites) >= {"unitTests", "acceptanceTests"}
    assert (ROOT / data["icon"]).is_file()

    parsed = MetadataFile.from_file(ROOT / "metadata.yaml")  # the CDK's own reader (used by its build/test tools)
    assert parsed.data.language == ConnectorLanguage.PYTHON


def test_definition_id_is_a_uuid() -> None:
    definition_id = _metadata()["data"]["definitionId"]
    assert isinstance(definition_id, str)
    assert str(uuid.UUID(definition_id)) == definition_id  # canonical lower-case form
    assert uuid.UUID(definition_id).version == 4


def _resolved_manifest() -> dict[str, Any]:
    """The manifest with its ``$ref``s resolved, as the CDK sees it."""
    manifest = _manifest()
    manifest.setdefault("type", "DeclarativeSource")
    resolved = ManifestReferenceResolver().preprocess_manifest(manifest)
    propagated = ManifestComponentTransformer().propagate_types_and_parameters("", resolved, {})
    assert isinstance(propagated, dict)
    return propagated


def _allowed_hosts(hosts: list[str], config: dict[str, Any]) -> list[str]:
    """What the platform makes of ``allowedHosts.hosts`` for a config, as airbyte-platform's
    ``ConfigReplacer.getAllowedHosts`` does (airbyte-commons-converters): each ``${key}`` takes the
    config value, reduced to its host when it is a URL; an entry left with a ``${`` is dropped."""

    def host(value: str) -> str:
        return urlsplit(value if "://" in value else f"x://{value}").hostname or value

    values = {key: host(str(value)) for key, value in config.items() if isinstance(value, (str, int, float))}
    resolved = [re.sub(r"\$\{([\w.]+)\}", lambda m: values.get(m.group(1), m.group(0)), entry) for entry in hosts]
    return [entry for entry in resolved if "${" not in entry]


def test_allowed_hosts_follow_base_url() -> None:
    hosts = _metadata()["data"]["allowedHosts"]["hosts"]
    properties = _manifest()["spec"]["connection_specification"]["properties"]
    for key in re.findall(r"\$\{([\w.]+)\}", " ".join(hosts)):
        assert key in properties, f"allowedHosts names ${{{key}}}, which is not a config field"

    default = properties["base_url"]["default"]
    configs = [
        {"api_key": "pk_x"},  # base_url left out: the connector calls the default
        {"api_key": "pk_x", "base_url": default},
        {"api_key": "pk_x", "base_url": "http://127.0.0.1:8765"},  # the emulator, as in the README
        {"api_key": "pk_x", "base_url": "https://klaviyo-proxy.example.com/prefix"},
    ]
    for config in configs:
        called = urlsplit(config.get("base_url", default)).hostname
        assert called in _allowed_hosts(hosts, config), f"{called} would be blocked for {config}"


# The wait the connector allows a Retry-After (RetryAfterBackoff: longer ends the sync), and the most
# Klaviyo's RateLimit-Reset can hold back a report call (its steady limit is per minute).
RETRY_AFTER_CAP_SECONDS = 600
PACING_SECONDS = 60


def test_max_seconds_between_messages_covers_the_longest_silence() -> None:
    """The platform fails a sync whose source sends no RECORD or STATE for ``maxSecondsBetweenMessages``.
    The longest silence is one request retried to the end: the CDK starts retries until ``max_time``
    has passed (measured at each attempt's start), so the last attempt that may fail starts just
    before it, is paced, waits out the longest backoff (plus the second the CDK adds), and is
    followed by one more paced attempt."""
    from airbyte_cdk.sources.declarative.interpolation.interpolated_string import InterpolatedString
    from airbyte_cdk.sources.declarative.requesters.error_handlers import DefaultErrorHandler

    handlers: list[dict[str, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "DefaultErrorHandler" or str(node.get("class_name", "")).endswith(".SentenceErrorHandler"):
                handlers.append(node)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(_resolved_manifest())
    assert handlers, "the manifest has no error handler"
    cdk_default_max_time = DefaultErrorHandler.__dataclass_fields__["max_time"].default
    assert cdk_default_max_time == 600  # if the CDK changes it, redo the sum in metadata.yaml

    silence = 0.0
    for handler in handlers:
        max_time = float(handler.get("max_time", cdk_default_max_time))
        max_retries = int(handler.get("max_retries", 5))
        longest_sleep = float(RETRY_AFTER_CAP_SECONDS)
        for strategy in handler.get("backoff_strategies", []):
            assert float(strategy.get("max_waiting_time_in_seconds", 0)) <= RETRY_AFTER_CAP_SECONDS
            if strategy.get("type") == "ExponentialBackoffStrategy":
                # As a sync evaluates it (no check-only overrides in the config).
                factor = float(InterpolatedString.create(str(strategy.get("factor", 5)), parameters={}).eval({}))
                longest_sleep = max(longest_sleep, factor * 2**max_retries)
        silence = max(silence, max_time + PACING_SECONDS + (longest_sleep + 1) + PACING_SECONDS)

    allowed = _metadata()["data"]["maxSecondsBetweenMessages"]
    assert isinstance(allowed, int)
    # At least a minute for Klaviyo to answer each of the last two attempts.
    assert allowed >= silence + 2 * 60, f"maxSecondsBetweenMessages {allowed} < {silence:.0f} s of waiting + 120 s for 2 answers"
    assert allowed <= 3 * 3600, "no looser than the platform's own default (3 hours)"


def test_suggested_streams_are_streams_of_the_manifest() -> None:
    suggested = _metadata()["data"]["suggestedStreams"]
    assert set(suggested) == {"streams"}
    streams = [s["name"] for s in _resolved_manifest()["streams"]]
    assert suggested["streams"] and set(suggested["streams"]) <= set(streams)
    assert len(set(suggested["streams"])) == len(suggested["streams"])
    parsed = MetadataFile.from_file(ROOT / "metadata.yaml")
    assert parsed.data.suggestedStreams is not None and parsed.data.suggestedStreams.streams == suggested["streams"]


def test_every_declared_dependency_is_imported() -> None:
    """``install_requires`` holds what the package imports, and nothing it does not (pendulum was
    declared and never imported)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    requires = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "install_requires"))
    names = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("-", "_") for r in requires}

    imported: set[str] = set()
    for path in [ROOT / "main.py", *sorted((ROOT / PACKAGE).glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert names <= imported, f"declared but never imported: {sorted(names - imported)}"
    third_party = imported - set(sys.stdlib_module_names) - {PACKAGE, "__future__"}
    assert third_party <= names, f"imported but not declared: {sorted(third_party - names)}"


def test_version_is_the_same_everywhere() -> None:
    tag = _metadata()["data"]["dockerImageTag"]
    assert tag == _setup_version()

    rows = _docs_changelog_rows()
    assert rows, "the docs changelog table is empty"
    versions = [Version(row[0]) for row in rows]
    assert versions == sorted(versions, reverse=True), "docs changelog rows must be newest first"
    assert rows[0][0] == tag
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", rows[0][1])

    headings = _changelog_headings()
    assert headings, "CHANGELOG.md has no '## X.Y.Z (YYYY-MM-DD)' heading"
    assert [Version(v) for v, _ in headings] == sorted((Version(v) for v, _ in headings), reverse=True)
    assert headings[0] == (tag, rows[0][1]), "CHANGELOG.md and the docs disagree on the newest release"

    assert _labels(_dockerfile())["io.airbyte.version"] == tag


def test_base_image_is_pinned_and_shared_with_the_dockerfile() -> None:
    base_image = _metadata()["data"]["connectorBuildOptions"]["baseImage"]
    assert DIGEST_PINNED.match(base_image), base_image
    assert _dockerfile_base_image(_dockerfile()) == base_image


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_follows_the_python_connector_layout() -> None:
    instructions = _dockerfile()
    assert _only(instructions, "WORKDIR") == "/airbyte/integration_code"
    entrypoint = json.loads(_only(instructions, "ENTRYPOINT"))
    assert entrypoint == ["python", "/airbyte/integration_code/main.py"]
    env = dict(shlex.split(a)[0].split("=", 1) for kw, a in instructions if kw == "ENV")
    assert env["AIRBYTE_ENTRYPOINT"] == " ".join(entrypoint)
    labels = _labels(instructions)
    assert labels["io.airbyte.name"] == _metadata()["data"]["dockerRepository"]
    pip = [shlex.split(a) for kw, a in instructions if kw == "RUN" and "pip install" in a]
    assert len(pip) == 1
    assert "--no-cache-dir" in pip[0] and pip[0][-1] == "."
    assert not {"-e", "--editable"} & set(pip[0])


# --- icon.svg ------------------------------------------------------------------------------------


def test_icon_is_a_self_contained_svg() -> None:
    text = (ROOT / "icon.svg").read_text(encoding="utf-8")
    root = ET.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox")
    assert not re.search(r"(?:xlink:)?href\s*=|url\(\s*['\"]?(?:https?:|//)|<image\b|<script\b", text)


# --- manifest and docs ---------------------------------------------------------------------------


def _manifest() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / PACKAGE / "manifest.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_validates_against_the_cdk_component_schema() -> None:
    # What ConcurrentDeclarativeSource._pre_process_manifest and _validate_source do.
    propagated = _resolved_manifest()
    raw_schema = pkgutil.get_data("airbyte_cdk", "sources/declarative/declarative_component_schema.yaml")
    assert raw_schema is not None
    jsonschema.validate(propagated, yaml.safe_load(raw_schema))

    assert [s["name"] for s in propagated["streams"]] == ["segments", "segment_values", "segment_series"]
    assert propagated["spec"]["connection_specification"]["required"] == ["api_key"]


def test_docs_describe_every_config_field_with_its_default() -> None:
    docs = (ROOT / "docs" / "klaviyo-segments.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\|[^|\n]*\| `(\w+)` \|.*$", docs, re.MULTILINE)}
    properties = _resolved_manifest()["spec"]["connection_specification"]["properties"]
    # Fields the UI hides (airbyte_hidden) are set by the connector itself, never by a user.
    properties = {name: prop for name, prop in properties.items() if not prop.get("airbyte_hidden")}
    assert set(properties) <= set(rows), f"undocumented config fields: {sorted(set(properties) - set(rows))}"
    for name, prop in properties.items():
        default = prop.get("default")
        if isinstance(default, (str, int)) and not isinstance(default, bool):
            assert f"`{default}`" in rows[name], f"docs row for {name} does not give its default {default!r}"
    for heading in ("## Prerequisites", "## Setup guide", "## Supported sync modes", "## Supported streams", "## Changelog"):
        assert heading in docs
    for stream in ("segments", "segment_values", "segment_series"):
        assert f"### `{stream}`" in docs


# --- the Dockerfile's install, replayed ----------------------------------------------------------


def _replay_copies(instructions: list[tuple[str, str]], workdir: PurePosixPath, into: Path) -> None:
    """Performs each COPY from the repo into ``into`` (standing in for WORKDIR), as ``docker build`` would."""
    for kw, args in instructions:
        if kw != "COPY":
            continue
        *sources, dest = shlex.split(args)
        assert sources and not any(s.startswith("--") for s in sources), f"unsupported COPY {args!r}"
        dest_path = PurePosixPath(dest) if dest.startswith("/") else workdir / dest
        target = into / dest_path.relative_to(workdir)
        for source in sources:
            origin = ROOT / source
            assert origin.exists(), f"the Dockerfile copies {source}, which is not in the repo: docker build would fail"
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
            else:
                is_dir = dest.endswith("/") or len(sources) > 1
                destination = target / origin.name if is_dir else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, destination)


def test_dockerfile_install_replayed_answers_spec(tmp_path: Path) -> None:
    instructions = _dockerfile()
    workdir = PurePosixPath(_only(instructions, "WORKDIR"))
    code = tmp_path / "integration_code"
    site = tmp_path / "site"
    code.mkdir()
    _replay_copies(instructions, workdir, code)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", PYTHONDONTWRITEBYTECODE="1")

    # RUN pip install --no-cache-dir .  ->  the same non-editable install, offline, into its own dir.
    pip_args = shlex.split(next(a for kw, a in instructions if kw == "RUN" and "pip install" in a))
    install_target = code / pip_args[-1]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(install_target)],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    # Only the connector ships: the emulator (klaviyo_emulator), the bench, the tests and what they share
    # (testkit) stay out of the image's copy and of the installed package.
    assert {p.name for p in site.iterdir() if not p.name.endswith((".dist-info", ".egg-info"))} == {PACKAGE, "bin"}
    assert not {"klaviyo_emulator", "bench", "testkit", "unit_tests", "integration_tests"} & {p.name for p in code.iterdir()}

    # package_data made it into the installed copy: the manifest, and any data file beside it.
    installed = site / PACKAGE
    assert (installed / "manifest.yaml").read_bytes() == (ROOT / PACKAGE / "manifest.yaml").read_bytes()
    data_files = {p.relative_to(ROOT / PACKAGE) for p in (ROOT / PACKAGE).rglob("*") if p.suffix in {".json", ".yaml"}}
    assert {p.relative_to(installed) for p in installed.rglob("*") if p.suffix in {".json", ".yaml"}} == data_files

    # The installed copy, not the repo checkout (installed editable in this venv), is what gets imported.
    env["PYTHONPATH"] = str(site)
    for key, value in (shlex.split(a)[0].split("=", 1) for kw, a in instructions if kw == "ENV"):
        env[key] = value
    imported = subprocess.run(
        [sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert Path(imported.stdout.strip()).resolve().is_relative_to(site.resolve()), imported.stdout

    # ENTRYPOINT ["python", "/airbyte/integration_code/main.py"] spec
    entrypoint = json.loads(_only(instructions, "ENTRYPOINT"))
    assert entrypoint[0] == "python"
    mapped = [str(code / PurePosixPath(a).relative_to(workdir)) if a.startswith(f"{workdir}/") else a for a in entrypoint[1:]]
    # As in the image, main.py's own directory (holding the COPYed sources) comes first on sys.path; with
    # -P it does not, so the second run answers from the pip-installed copy alone.
    for interpreter in ([sys.executable], [sys.executable, "-P"]):
        result = subprocess.run(
            [*interpreter, *mapped, "spec"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr[-2000:]
        specs = _spec_messages(result.stdout)
        assert len(specs) == 1, result.stdout[-2000:]
        assert "api_key" in specs[0]["spec"]["connectionSpecification"]["required"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
