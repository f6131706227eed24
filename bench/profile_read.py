"""Profiles one connector ``read`` in this process with cProfile, in every thread.

The CDK reads partitions (HTTP, extraction, filtering) in a worker thread and serializes messages
in the main thread; pyinstrument and a plain ``cProfile.run`` only see the thread they start in, so
each thread gets its own ``cProfile.Profile`` and the stats are merged per thread role. The emulator
must run in another process (``python -m klaviyo_emulator``): this profile then sees only
the connector. stdout (the Airbyte messages) goes wherever the caller points it.

    python -m bench.profile_read --summary /tmp/profile.json -- read --config c.json --catalog k.json > out.jsonl
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

# (category, test) in order: the first match names the category of a function's own time.
WAIT_FUNCTIONS = ("acquire' of '_thread.lock", "acquire' of '_thread.RLock", "<built-in method time.sleep>",
                  "'wait' of", "poll' of 'select", "select.select")
SOCKET_FUNCTIONS = ("recv_into' of '_socket", "recv' of '_socket", "sendall' of '_socket", "connect' of '_socket")


OTHER = "other (stdlib, builtins)"
# CPU time of the calling thread: a thread waiting for the GIL, a socket or the queue is not charged.
TIMER = time.thread_time


def category(filename: str, function: str) -> str:
    """What a function's own time is spent on, by where the function lives (builtins by their name)."""
    path = filename.replace("\\", "/")
    if any(f in function for f in WAIT_FUNCTIONS):
        return "idle: waiting on the queue / locks"
    if any(f in function for f in SOCKET_FUNCTIONS):
        return "idle: waiting for the emulator's answer (socket)"
    if "source_klaviyo_segments/components" in path or "source_klaviyo_segments/windows" in path:
        return "connector: SeriesRowExtractor, BucketWindowFilter, batches (components.py, windows.py)"
    if "source_klaviyo_segments/" in path:
        return "connector: run.py / source.py / config.py"
    if "_strptime" in path or "strptime" in function or "/locale.py" in path or "datetime_parser" in path \
            or "state_converters" in path:
        return "CDK: cursor value parsing per record (strptime)"
    if "slice_hasher" in path or "json/encoder" in path or path.endswith("json/__init__.py") and function == "dumps" \
            or "_hashlib" in function or "sha256" in function:
        return "CDK: StreamSlice hashing per record (json.dumps + sha256)"
    if "orjson" in function or "airbyte_cdk/entrypoint" in path or "serpyco" in path or "serpyco" in function \
            or "airbyte_cdk/models" in path or "airbyte_protocol" in path:
        return "CDK: message serialization (AirbyteMessageSerializer + orjson)"
    if "airbyte_cdk/utils/print_buffer" in path or "airbyte_secrets_utils" in path or function in (
            "<built-in method builtins.print>",) or "'write' of '_io" in function or "getvalue' of '_io" in function:
        return "output: print, PRINT_BUFFER, filter_secrets"
    if "/queue.py" in path or "/threading.py" in path or "of '_thread." in function:
        return "thread hand-off (queue.put/get, locks)"
    if "airbyte_cdk/sources/utils/transform" in path or "jsonschema" in path:
        return "CDK: schema type normalization (TypeTransformer)"
    if "airbyte_cdk/sources/declarative/interpolation" in path or "jinja2" in path:
        return "CDK: Jinja interpolation"
    if "airbyte_cdk/sources/declarative" in path:
        return "CDK: declarative retriever / selector / record filter"
    if "airbyte_cdk/sources/streams/concurrent" in path or "airbyte_cdk/sources/concurrent_source" in path \
            or "airbyte_cdk/sources/types" in path or "airbyte_cdk/sources/message" in path:
        return "CDK: concurrent plumbing (Record, partitions, cursor observe)"
    if "airbyte_cdk/sources/streams/http" in path or "airbyte_cdk/sources/streams/call_rate" in path:
        return "CDK: HttpClient (request building, error handling, rate budget)"
    if "airbyte_cdk" in path:
        return "CDK: other (record helper, memory monitor, ...)"
    if any(p in path for p in ("requests/", "urllib3/", "http/client", "/socket.py", "/ssl.py", "email/")):
        return "HTTP client (requests / urllib3 / http.client)"
    if "json/" in path or "scanner" in function or "json.decoder" in function or "_json" in function:
        return "JSON decode of responses (stdlib json)"
    return OTHER


def profile_read(args: list[str]) -> tuple[float, list[tuple[str, cProfile.Profile]]]:
    """Runs the connector's command line in this process; returns its wall time and a profile per thread."""
    from source_klaviyo_segments.run import run

    profiles: list[tuple[str, cProfile.Profile]] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile(TIMER)
        with lock:
            profiles.append((self.name, profile))
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_profile = cProfile.Profile(TIMER)
    started = time.perf_counter()
    main_profile.enable()
    try:
        run(args)
    finally:
        main_profile.disable()
        wall = time.perf_counter() - started
        threading.Thread.run = original_run  # type: ignore[method-assign]
    # The CDK shuts its pool down without waiting: let the workers finish so their profiles close.
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=10)
    return wall, [("MainThread", main_profile), *profiles]


def summarize(wall: float, profiles: list[tuple[str, cProfile.Profile]], top: int = 20) -> dict[str, Any]:
    """Own time per category, per thread role, and the top functions by own time."""
    roles: dict[str, pstats.Stats] = {}
    for name, profile in profiles:
        role = "main" if name == "MainThread" else "workers"
        stats = pstats.Stats(profile)
        if role in roles:
            roles[role].add(stats)
        else:
            roles[role] = stats
    summary: dict[str, Any] = {"wall_s": wall, "roles": {}, "top": [], "cumulative": {}}
    functions: dict[str, dict[str, Any]] = {}
    for role, stats in roles.items():
        categories: dict[str, float] = {}
        total = 0.0
        for (filename, line, function), (_cc, calls, own, cumulative, callers) in stats.stats.items():  # type: ignore[attr-defined]
            name = f"{_short(filename)}:{line}({function})" if filename != "~" else function
            cat = category(filename, function)
            if cat == OTHER and callers:
                # A builtin (isinstance, dict.get, ...) or generic stdlib helper: its time belongs to whoever called it.
                for (caller_file, _line, caller_function), caller_times in callers.items():
                    caller_category = category(caller_file, caller_function)
                    categories[caller_category] = categories.get(caller_category, 0.0) + caller_times[2]
            else:
                categories[cat] = categories.get(cat, 0.0) + own
            total += own
            entry = functions.setdefault(name, {"function": name, "category": cat, "own_s": 0.0, "cumulative_s": 0.0,
                                                "calls": 0, "roles": []})
            entry["own_s"] += own
            entry["cumulative_s"] = max(entry["cumulative_s"], cumulative)
            entry["calls"] += calls
            entry["roles"].append(role)
        summary["roles"][role] = {"total_own_s": total, "categories": categories}
    busy = [f for f in functions.values() if not f["category"].startswith("idle")]
    summary["top"] = sorted(busy, key=lambda f: f["own_s"], reverse=True)[:top]
    summary["functions"] = {name: {"own_s": f["own_s"], "cumulative_s": f["cumulative_s"], "calls": f["calls"]}
                            for name, f in functions.items() if f["cumulative_s"] >= 0.01}
    return summary


def _short(filename: str) -> str:
    path = filename.replace("\\", "/")
    for marker in ("site-packages/", "/work/main/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = "stdlib/" + path.split("/", 1)[1]
            break
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_read", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summary", type=Path, required=True, help="where to write the JSON summary")
    parser.add_argument("--pstats", type=Path, default=None, help="also dump the merged pstats here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the connector's arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    wall, profiles = profile_read(command)
    summary = summarize(wall, profiles)
    args.summary.write_text(json.dumps(summary, indent=1))
    if args.pstats:
        merged = pstats.Stats(profiles[0][1])
        for _, profile in profiles[1:]:
            merged.add(profile)
        merged.dump_stats(str(args.pstats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
