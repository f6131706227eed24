"""``python -m bench.run`` (``make bench``): the installed connector against the Klaviyo emulator,
written to BENCHMARKS.md. Exits 1 when a gate fails (see the file's Verdict table).

    python -m bench.run                                  # every section
    python -m bench.run --sections calls,listing --out /tmp/b.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Sequence

from bench.harness import REPO, load_average, machine
from bench.render import render
from bench.sections import Gate, Section, Table, section_functions


def main(argv: Sequence[str] | None = None) -> int:
    functions = section_functions()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(functions), help="comma-separated, of: " + ", ".join(functions))
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(functions))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(functions)}")
    started, load_before = time.perf_counter(), load_average()
    done: dict[str, Section] = {}
    seconds = Table(["section", "s"])
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for name in chosen:
            section_started = time.perf_counter()
            workdir = Path(scratch) / name
            workdir.mkdir()
            try:
                done[name] = functions[name](workdir, done)
            except Exception as error:  # one broken section must not hide the others' figures
                traceback.print_exc()
                done[name] = Section(name, gates=[Gate(f"section `{name}` ran", f"{type(error).__name__}: {error}",
                                                       "no error", False)])
            seconds.rows.append([name, f"{time.perf_counter() - section_started:.0f}"])
            print(f"  {name}: {seconds.rows[-1][1]} s", flush=True)
    total = time.perf_counter() - started
    seconds.rows.append(["**total**", f"**{total:.0f}**"])
    sections = [*done.values(), Section("Time per section", [seconds])]
    failures = [gate for section in sections for gate in section.gates if not gate.passed]
    facts = Table(["", ""], [*machine(), ["load average (1 min), before / after", f"{load_before} / {load_average()}"],
                             ["written", f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"],
                             ["`make bench` took", f"{total / 60:.1f} min"]])
    args.out.write_text(render(sections, facts, failures), encoding="utf-8")
    for gate in failures:
        print(f"FAIL: {gate.what}: {gate.measured} (limit {gate.limit})", flush=True)
    print(f"{'FAIL' if failures else 'PASS'} in {total:.0f} s; wrote {args.out}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
