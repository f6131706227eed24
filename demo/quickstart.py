"""Sync Klaviyo segment growth into DuckDB with PyAirbyte, then show and chart it.

    python -m demo.quickstart                        # against the local Klaviyo emulator (make demo)
    python -m demo.quickstart --config secrets/config.json   # against your account (make sync)

Rows land in PyAirbyte's default local DuckDB cache (``.cache/default_cache/default_cache.duckdb``
under the current folder, or ``$AIRBYTE_CACHE_ROOT``); the chart is written to ``--chart``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# PyAirbyte must neither look up its registry nor phone home.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

import airbyte as ab  # noqa: E402

STREAMS = ["segments", "segment_values", "segment_series"]
DEMO_SEGMENTS = 40
DEMO_START = "2025-06-01"


def connector_executable() -> str:
    beside = Path(sys.executable).with_name("source-klaviyo-segments")
    found = str(beside) if beside.exists() else shutil.which("source-klaviyo-segments")
    if not found:
        raise SystemExit("source-klaviyo-segments is not installed: run `make demo` or `pip install .` first.")
    return found


@contextlib.contextmanager
def demo_klaviyo() -> Iterator[dict[str, Any]]:
    """The local Klaviyo emulator, and a config pointing at it."""
    from integration_tests.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(segments=DEMO_SEGMENTS)) as emulator:
        print(f"Klaviyo emulator on {emulator.base_url} with {DEMO_SEGMENTS} segments")
        yield {
            "api_key": emulator.config.api_key,
            "base_url": emulator.base_url,
            "start_date": DEMO_START,
            "interval": "daily",
            "values_timeframe": "last_30_days",
        }


def sync(config: dict[str, Any]) -> Any:
    source = ab.get_source(
        "source-klaviyo-segments",
        config=config,
        local_executable=connector_executable(),
        install_if_missing=False,
    )
    source.check()
    print("check: succeeded")
    print("discover:", ", ".join(source.get_available_streams()))
    source.select_streams(STREAMS)
    return source.read(cache=ab.get_default_cache())


def summarize(result: Any) -> list[str]:
    """Print rows per stream and the biggest movers; return the top segment ids."""
    cache = result.cache
    print("\nrows per stream")
    for stream in STREAMS:
        print(f"  {stream:<16} {len(result[stream].to_pandas()):>8,}")
    series = result["segment_series"].to_pandas()
    segments = result["segments"].to_pandas().set_index("id")["name"]
    movers = series.groupby("segment_id")["net_members_changed"].sum().sort_values(key=abs, ascending=False).head(5)
    print("\nbiggest movers (net members changed)")
    for segment_id, change in movers.items():
        print(f"  {segments.get(segment_id, segment_id):<28} {int(change):>+10,}")
    print(f"\nDuckDB file: {getattr(cache, 'db_path', '(default cache)')}")
    return list(movers.index)


def chart(result: Any, segment_ids: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result["segment_series"].to_pandas()
    names = result["segments"].to_pandas().set_index("id")["name"]
    # One panel per segment, each on its own scale: totals differ by orders of magnitude, and on a
    # shared axis every curve would look flat.
    figure, panels = plt.subplots(
        len(segment_ids) + 1, 1, figsize=(10, 2.2 * (len(segment_ids) + 1)), sharex=True, squeeze=False
    )
    weekly = panels[-1][0]
    for index, ((totals,), segment_id) in enumerate(zip(panels[:-1], segment_ids, strict=True)):
        rows = series[series["segment_id"] == segment_id].copy()
        rows["day"] = rows["date_time"].str.slice(0, 10).map(dt.date.fromisoformat)
        rows = rows.sort_values("day")
        label = names.get(segment_id, segment_id)
        color = f"C{index}"  # each panel would restart the colour cycle
        totals.plot(rows["day"], rows["total_members"], linewidth=1.6, color=color)
        totals.set_title(label, fontsize=9, loc="left")
        totals.set_ylabel("total members", fontsize=8)
        weekly.plot(rows["day"], rows["net_members_changed"].rolling(7).sum(), label=label, linewidth=1.0, color=color)
        totals.grid(alpha=0.3)
    figure.suptitle("Klaviyo segments: the five biggest movers")
    weekly.set_ylabel("net change, last 7 days", fontsize=8)
    weekly.axhline(0, color="black", linewidth=0.6)
    weekly.grid(alpha=0.3)
    weekly.legend(loc="best", fontsize=7)
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"chart: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="your config.json; without it, the local emulator is used")
    parser.add_argument("--chart", type=Path, default=Path("demo_output/total_members.png"))
    args = parser.parse_args(argv)
    if args.config:
        result = sync(json.loads(args.config.read_text()))
        chart(result, summarize(result), args.chart)
        return 0
    with demo_klaviyo() as config:
        result = sync(config)
    chart(result, summarize(result), args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
