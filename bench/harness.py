"""Running the installed connector (and the emulator) as processes, and reading what a read wrote."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from testkit import catalog_entry, connector_command

REPO = Path(__file__).resolve().parents[1]
WALL = "%Y-%m-%dT%H:%M:%S"


def read_config(base_url: str, api_key: str, interval: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {"api_key": api_key, "base_url": base_url, "interval": interval,
            "start_date": start.strftime(WALL), "end_date": end.strftime(WALL)}


def write_inputs(workdir: Path, config: dict[str, Any], streams: Sequence[str] | None) -> list[str]:
    """config.json (and a catalog of ``streams``, each incremental but ``segments``) in ``workdir``;
    returns the command's arguments."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config))
    args = ["--config", str(workdir / "config.json")]
    if streams is not None:
        entries = [catalog_entry(name, "full_refresh" if name == "segments" else "incremental") for name in streams]
        (workdir / "catalog.json").write_text(json.dumps({"streams": entries}))
        args += ["--catalog", str(workdir / "catalog.json")]
    return args


@dataclass
class ProcessRun:
    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    stderr_tail: str


def run_measured(command: Sequence[str], stdout_path: Path, cwd: Path, timeout: float = 900) -> ProcessRun:
    """Runs ``command`` with stdout to a file: its wall time, CPU time (user + system) and peak RSS.
    ``/usr/bin/time`` reports the last two when there is one; else the rusage of reaped children,
    whose peak RSS is the largest of any child so far (and may hold the bench's own pages, which a
    child forked from the bench counts before it runs ``command``)."""
    err_path, usage_path = stdout_path.with_suffix(".stderr"), stdout_path.with_suffix(".usage")
    launcher = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(usage_path)] if Path("/usr/bin/time").exists() else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(stdout_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([*launcher, *command], stdout=out, stderr=err, cwd=cwd)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - started
    if launcher:
        max_rss_kb, user, system = usage_path.read_text().split()[-3:]
        cpu, max_rss = float(user) + float(system), float(max_rss_kb)
    else:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the children reaped meanwhile: this one
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        max_rss = float(after.ru_maxrss)  # the largest child so far: an upper bound
    return ProcessRun(proc.returncode, wall, cpu, max_rss / 1024.0, err_path.read_bytes()[-2000:].decode(errors="replace"))


def read(workdir: Path, config: dict[str, Any], streams: Sequence[str] | None = ("segment_series",),
         command: str = "read", timeout: float = 900) -> tuple[ProcessRun, Path]:
    args = write_inputs(workdir, config, streams if command == "read" else None)
    out = workdir / "out.jsonl"
    return run_measured([*connector_command(), command, *args], out, cwd=workdir, timeout=timeout), out


@dataclass
class Output:
    """What a read wrote: records per stream, distinct (segment, date_time) keys of the series, errors."""

    records: Counter[str] = field(default_factory=Counter)
    distinct_series: int = 0
    errors: list[str] = field(default_factory=list)
    first_emitted_ms: int | None = None
    last_emitted_ms: int | None = None

    @property
    def steady_s(self) -> float:
        if self.first_emitted_ms is None or self.last_emitted_ms is None:
            return 0.0
        return (self.last_emitted_ms - self.first_emitted_ms) / 1000.0


def read_output(path: Path) -> Output:
    output, keys = Output(), set()
    with open(path, "rb") as lines:
        for line in lines:
            if not line.startswith(b"{"):
                continue
            message = json.loads(line)
            if message.get("type") == "RECORD":
                record = message["record"]
                output.records[record["stream"]] += 1
                if record["stream"] == "segment_series":
                    keys.add((record["data"]["segment_id"], record["data"]["date_time"]))
                emitted = record.get("emitted_at")
                output.first_emitted_ms = output.first_emitted_ms or emitted
                output.last_emitted_ms = emitted
            elif message.get("type") == "TRACE" and message["trace"].get("type") == "ERROR":
                output.errors.append(message["trace"]["error"].get("message", ""))
    output.distinct_series = len(keys)
    return output


class EmulatorProcess:
    """``python -m klaviyo_emulator`` in its own process (so the connector's CPU figures hold none of
    the emulator's), stopped with SIGTERM to its own pid."""

    def __init__(self, *args: str) -> None:
        self.args = [sys.executable, "-m", "klaviyo_emulator", "--port", "0", *args]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        match = re.search(r"listening on (http://\S+)", self.proc.stdout.readline())
        if not match:
            self.__exit__()
            raise RuntimeError("the emulator process did not start")
        self.base_url = match.group(1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def machine() -> list[list[str]]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "source_klaviyo_segments"], cwd=REPO,
                           capture_output=True, text=True).stdout
    return [["CPU", cpu], ["cores", str(len(os.sched_getaffinity(0)))],
            ["Python", platform.python_version()], ["airbyte-cdk", version_of("airbyte-cdk")],
            ["klaviyo-api (peer)", version_of("klaviyo-api")],
            ["connector", f"{commit.strip()}" + (" with uncommitted changes" if dirty else "")]]
