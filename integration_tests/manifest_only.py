"""Run ``manifest.yaml`` and ``components.py`` as Airbyte runs a manifest-only connector: through the
CDK's ``source-declarative-manifest`` entrypoint, in a subprocess that cannot import the
``source_klaviyo_segments`` package.

The two files travel in the config, as the platform injects them (see the CDK's
``sources/declarative/parsers/custom_code_compiler.py``):

- ``__injected_declarative_manifest``: the manifest, parsed from YAML into a dict;
- ``__injected_components_py``: the text of ``components.py``;
- ``__injected_components_py_checksums``: ``{"md5": <hex md5 of that text's UTF-8 bytes>}``;

and the process runs with ``AIRBYTE_ENABLE_UNSAFE_CODE=true``.

How the package is hidden: it is installed in this venv (editable, through a ``.pth`` file and a
meta-path finder), so a plain subprocess of the venv's Python could import it. The subprocess runs
``python -I`` (no ``PYTHON*`` variables, no user site, neither the current directory nor a script
directory on ``sys.path``) in an empty working directory, with a bootstrap that first puts a finder
at the head of ``sys.meta_path`` that refuses ``source_klaviyo_segments`` and its submodules
(``ModuleNotFoundError``) and notes every attempt, then runs the CDK's console script
``source-declarative-manifest`` unchanged. ``Run.hidden_imports`` lists the attempts, so a test
can tell a connector that never reached for the package from one that caught the error.

By hand (prints the entrypoint's output, exits with its code)::

    python -m integration_tests.manifest_only check --config secrets/config.json
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from integration_tests.conftest import Run
from testkit import catalog_entry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "source_klaviyo_segments"
MANIFEST = ROOT / PACKAGE / "manifest.yaml"
COMPONENTS = ROOT / PACKAGE / "components.py"
# The console script pip installs with airbyte-cdk (airbyte_cdk.cli.source_declarative_manifest:run).
ENTRYPOINT = Path(sys.executable).with_name("source-declarative-manifest")

INJECTED_MANIFEST = "__injected_declarative_manifest"
INJECTED_COMPONENTS = "__injected_components_py"
INJECTED_CHECKSUMS = "__injected_components_py_checksums"

# What running injected code changes in a process: the CDK registers the injected module under
# these names, and custom code runs only with this variable set.
REGISTERED = ("components", "source_declarative_manifest.components", "source_declarative_manifest")
UNSAFE_CODE = "AIRBYTE_ENABLE_UNSAFE_CODE"


class HidePackage(importlib.abc.MetaPathFinder):
    """Refuses ``source_klaviyo_segments`` and its submodules, noting every attempt."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == PACKAGE or fullname.startswith(PACKAGE + "."):
            self.attempts.append(fullname)
            message = f"No module named {fullname!r}: the manifest-only runtime has no such package"
            raise ModuleNotFoundError(message, name=fullname)
        return None


@contextlib.contextmanager
def without_the_package(allow_custom_code: bool = False) -> Iterator[HidePackage]:
    """This process as the manifest-only runtime (or the Connector Builder) sees it, for tests that
    run the CDK in process: importing the package fails, and neither the package's modules nor the
    components module it registers under the injected names are loaded, so only the injected text
    can answer for them. With ``allow_custom_code``, ``AIRBYTE_ENABLE_UNSAFE_CODE=true``. All
    restored afterwards, so the package's tests that follow see the process as it was."""
    saved_package = {name: module for name, module in sys.modules.items() if name == PACKAGE or name.startswith(PACKAGE + ".")}
    saved_registered = {name: sys.modules[name] for name in REGISTERED if name in sys.modules}
    saved_unsafe = os.environ.get(UNSAFE_CODE)
    for name in [*saved_package, *saved_registered]:
        del sys.modules[name]
    hide = HidePackage()
    sys.meta_path.insert(0, hide)
    if allow_custom_code:
        os.environ[UNSAFE_CODE] = "true"
    try:
        yield hide
    finally:
        sys.meta_path.remove(hide)
        sys.modules.update(saved_package)
        for name in REGISTERED:
            sys.modules.pop(name, None)
        sys.modules.update(saved_registered)
        if saved_unsafe is None:
            os.environ.pop(UNSAFE_CODE, None)
        else:
            os.environ[UNSAFE_CODE] = saved_unsafe


# Runs first in the subprocess: hide the package, then hand over to the mode's code.
_BOOTSTRAP = """
import atexit, importlib.abc, json, sys

HIDDEN, LOG = {package!r}, {log!r}
attempts = []

class HidePackage(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == HIDDEN or fullname.startswith(HIDDEN + "."):
            attempts.append(fullname)
            raise ModuleNotFoundError(
                f"No module named {{fullname!r}}: the manifest-only runtime has no such package", name=fullname
            )
        return None

sys.meta_path.insert(0, HidePackage())
for name in [n for n in sys.modules if n == HIDDEN or n.startswith(HIDDEN + ".")]:
    del sys.modules[name]

def write_log():
    with open(LOG, "w") as log:
        json.dump(attempts, log)

atexit.register(write_log)
"""

# The mode's code, after the bootstrap; argv (sys.argv[1:]) is the connector's command line.
_MODES = {
    # The console script, exactly as installed.
    "entrypoint": """
import runpy
script = {entrypoint!r}
sys.argv = [script, *sys.argv[1:]]
runpy.run_path(script, run_name="__main__")
""",
    # `spec`, twice. First the entrypoint's own answer (its `spec` handler, as `run` calls it): the
    # generic spec of source-declarative-manifest, since an injected manifest comes with a config and
    # `spec` takes none; the platform reads such a connector's spec from its manifest. Then the
    # manifest's spec, as a manifest-only connector answers it: the source built as the entrypoint
    # builds it for check/discover/read, launched for `spec` as the entrypoint launches a manifest
    # baked into the image. One process, to spend one CDK import on both.
    "manifest-spec": """
from airbyte_cdk.cli.source_declarative_manifest._run import create_declarative_source, handle_command
from airbyte_cdk.entrypoint import launch
handle_command(["spec"])
launch(create_declarative_source(["check", *sys.argv[2:]]), ["spec"])  # argv: spec --config ...
""",
    # Only the lookup (not the import, which would load the CDK): would the package import here?
    "probe": """
import importlib.util
try:
    spec = importlib.util.find_spec(HIDDEN_NAME)
    print(json.dumps({{"importable": spec is not None, "origin": spec and spec.origin}}))
except ImportError as error:
    print(json.dumps({{"importable": False, "error": f"{{type(error).__name__}}: {{error}}"}}))
""",
}


def injected(manifest_path: Path = MANIFEST, components_path: Path = COMPONENTS) -> dict[str, Any]:
    """The three keys the platform adds to a manifest-only connector's config."""
    manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    components = components_path.read_text(encoding="utf-8")
    return {
        INJECTED_MANIFEST: manifest,
        INJECTED_COMPONENTS: components,
        INJECTED_CHECKSUMS: {"md5": hashlib.md5(components.encode("utf-8")).hexdigest()},
    }


def subprocess_env(home: Path) -> dict[str, str]:
    """A clean environment: the locale and PATH of this one, custom code allowed, nothing else."""
    env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TZ") if name in os.environ}
    env.update(HOME=str(home), AIRBYTE_ENABLE_UNSAFE_CODE="true")
    return env


def bootstrap(mode: str, log: Path, hide: bool = True) -> str:
    """The ``python -I -c`` program of ``mode``, hiding the package unless ``hide`` is False."""
    code = _BOOTSTRAP.format(package=PACKAGE, log=str(log)) if hide else "import json, sys\n"
    return code + f"HIDDEN_NAME = {PACKAGE!r}\n" + _MODES[mode].format(entrypoint=str(ENTRYPOINT))


@dataclass
class ManifestOnlyRun(Run):
    """A ``Run`` (messages, return code, stderr), and the imports of the package it attempted."""

    hidden_imports: list[str] = field(default_factory=list)


def run_manifest_only(
    workdir: Path,
    command: str,
    config: dict[str, Any] | None,
    streams: list[tuple[str, str]] | None = None,
    state: list[dict[str, Any]] | None = None,
    timeout: float = 300,
    mode: str = "entrypoint",
    hide: bool = True,
) -> ManifestOnlyRun:
    """``source-declarative-manifest <command>`` with ``config`` (the two files injected into it),
    the catalog of ``streams`` (name, sync mode) as in ``conftest.run_connector``, and ``state``;
    the subprocess runs in an empty directory under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cwd = Path(tempfile.mkdtemp(prefix="sdm-", dir=workdir))
    files = Path(tempfile.mkdtemp(prefix="sdm-io-", dir=workdir))
    args = [command]
    if config is not None:
        (files / "config.json").write_text(json.dumps({**config, **injected()}))
        args += ["--config", str(files / "config.json")]
    if streams is not None:
        catalog = {"streams": [catalog_entry(name, mode_) for name, mode_ in streams]}
        (files / "catalog.json").write_text(json.dumps(catalog))
        args += ["--catalog", str(files / "catalog.json")]
    if state is not None:
        (files / "state.json").write_text(json.dumps(state))
        args += ["--state", str(files / "state.json")]
    log = files / "hidden_imports.json"
    done = subprocess.run(
        [sys.executable, "-I", "-c", bootstrap(mode, log, hide), *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=subprocess_env(cwd),
    )  # fmt: skip
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    attempts = json.loads(log.read_text()) if log.exists() else []
    return ManifestOnlyRun(messages=messages, returncode=done.returncode, stderr=done.stderr, hidden_imports=attempts)


def probe_package_import(workdir: Path, hide: bool = True) -> dict[str, Any]:
    """Whether ``import source_klaviyo_segments`` would find the package in the manifest-only subprocess."""
    run = run_manifest_only(workdir, "probe", None, mode="probe", hide=hide)
    assert run.returncode == 0, run.stderr[-2000:]
    (answer,) = run.messages
    return {**answer, "hidden_imports": run.hidden_imports}


def main(argv: list[str]) -> int:
    """``python -m integration_tests.manifest_only <command> --config ... [--catalog ...] [--state ...]``:
    the entrypoint's stdout and stderr, unchanged (the config's own keys, the two files injected)."""
    config_path = argv[argv.index("--config") + 1] if "--config" in argv else None
    with tempfile.TemporaryDirectory() as scratch:
        args = list(argv)
        if config_path:
            config = json.loads(Path(config_path).read_text())
            injected_path = Path(scratch) / "config.json"
            injected_path.write_text(json.dumps({**config, **injected()}))
            args[args.index("--config") + 1] = str(injected_path)
        # Paths given relative to the caller's directory still resolve in the empty working directory.
        args = [str(Path(a).resolve()) if i and args[i - 1] in ("--catalog", "--state") else a for i, a in enumerate(args)]
        done = subprocess.run([sys.executable, "-I", "-c", bootstrap("entrypoint", Path(scratch) / "log.json"), *args],
                              cwd=scratch, env=subprocess_env(Path(scratch)))  # fmt: skip
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
