"""Sync Klaviyo segment growth into DuckDB with PyAirbyte, then show and chart it.

    python -m demo.quickstart                        # against the local Klaviyo emulator (make demo)
    python -m demo.quickstart --config secrets/config.json   # against your account (make sync)

Rows land in PyAirbyte's default local DuckDB cache (``.cache/default_cache/default_cache.duckdb``
under the current folder, or ``$AIRBYTE_CACHE_ROOT``), timestamps as ``TIMESTAMP WITH TIME ZONE``
(``demo.duckdb_cache``). Two charts of the five biggest movers:
``--chart`` (default ``demo_output/total_members_by_segment.png``) and, beside it,
``net_members_changed_7d_by_segment.png``.

The emulator listens on a free port unless ``--emulator-port`` names one.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# PyAirbyte must neither look up its registry nor phone home.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# PyAirbyte imports Google's cloud clients, which warn about Python versions they will drop one
# day: nothing the demo's user can act on. Every other warning still shows.
warnings.filterwarnings(
    "ignore", message=r"You are using a Python version .* which Google will stop supporting", category=FutureWarning
)

import airbyte as ab  # noqa: E402

from demo.duckdb_cache import default_cache  # noqa: E402

STREAMS = ["segments", "segment_values", "segment_series"]
DEMO_SEGMENTS = 40
DEMO_START = "2025-06-01"
NET_CHANGE_CHART = "net_members_changed_7d_by_segment.png"


def connector_executable() -> str:
    beside = Path(sys.executable).with_name("source-klaviyo-segments")
    found = str(beside) if beside.exists() else shutil.which("source-klaviyo-segments")
    if not found:
        raise SystemExit("source-klaviyo-segments is not installed: run `make demo` or `pip install .` first.")
    return found


def port_problem(error: OSError, port: int) -> str:
    """One sentence on why the emulator could not listen on 127.0.0.1:`port`."""
    if error.errno == errno.EADDRINUSE:
        return (f"Port {port} is already in use, so the Klaviyo emulator cannot start there: "
                "stop what holds it, or pass --emulator-port 0 to use a free port.")
    return (f"The Klaviyo emulator cannot listen on 127.0.0.1:{port} ({error.strerror or error}): "
            "pass --emulator-port 0 to use a free port.")


@contextlib.contextmanager
def demo_klaviyo(port: int = 0) -> Iterator[dict[str, Any]]:
    """The local Klaviyo emulator (on `port`; 0 = a free one), and a config pointing at it."""
    from klaviyo_emulator import Emulator, EmulatorConfig

    try:
        emulator = Emulator(EmulatorConfig(segments=DEMO_SEGMENTS, port=port)).start()
    except OSError as error:
        raise SystemExit(port_problem(error, port)) from None
    try:
        print(f"Klaviyo emulator on {emulator.base_url} with {DEMO_SEGMENTS} segments")
        yield {
            "api_key": emulator.config.api_key,
            "base_url": emulator.base_url,
            "start_date": DEMO_START,
            "interval": "daily",
            "values_timeframe": "last_30_days",
        }
    finally:
        emulator.stop()


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
    return source.read(cache=default_cache())


def account_timezone(config: dict[str, Any]) -> str | None:
    """The account's timezone, asked as the connector asks it (its manifest's ``account_requester``),
    to chart the stored instants as the company's days; ``None`` if the key may not read it."""
    import yaml
    from airbyte_cdk.sources.declarative.parsers.manifest_reference_resolver import ManifestReferenceResolver

    import source_klaviyo_segments.source  # noqa: F401  (names the components module as the manifest does)
    from source_klaviyo_segments import components

    manifest = yaml.safe_load(Path(components.__file__).with_name("manifest.yaml").read_text(encoding="utf-8"))
    requester = ManifestReferenceResolver().preprocess_manifest(manifest)["definitions"]["account_requester"]
    return components.account_timezone(requester, {"base_url": components.DEFAULT_BASE_URL, **config})


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


def _daily(series: Any, segment_id: str, timezone: str | None) -> Any:
    rows = series[series["segment_id"] == segment_id].copy()
    # date_time is an instant (TIMESTAMP WITH TIME ZONE): the bucket's day is the company's.
    rows["day"] = rows["date_time"].dt.tz_convert(timezone or "UTC").dt.date
    return rows.sort_values("day")


def chart(result: Any, segment_ids: list[str], path: Path, timezone: str | None) -> list[Path]:
    """Draw the movers' total members to `path` and their 7-day net change beside it, by the company's
    days (``timezone``; UTC's if unknown); return both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, StrMethodFormatter

    series = result["segment_series"].to_pandas()
    names = result["segments"].to_pandas().set_index("id")["name"]
    daily = {segment_id: _daily(series, segment_id, timezone) for segment_id in segment_ids}
    x_label = f"day ({timezone})" if timezone else "day (UTC: the API key may not read the account's time zone)"
    path.parent.mkdir(parents=True, exist_ok=True)

    def date_axis(axes: Any) -> None:
        # Every tick names its month and year: a range across New Year shows both years.
        axes.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=10))  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%b\n%Y"))  # type: ignore[no-untyped-call]
        axes.set_xlabel(x_label, fontsize=9)

    # 1. Total members: one panel per segment, each on its own scale. Totals differ by orders of
    # magnitude, and from zero (or on a shared axis) every curve would look flat; the figure says so,
    # and each title gives the change in members and per cent.
    figure, panels = plt.subplots(
        len(segment_ids), 1, figsize=(10, 2.1 * len(segment_ids) + 1.2), sharex=True, squeeze=False, layout="constrained"
    )
    for index, ((axes,), segment_id) in enumerate(zip(panels, segment_ids, strict=True)):
        rows = daily[segment_id]
        color = f"C{index}"  # each panel would restart the colour cycle
        axes.plot(rows["day"], rows["total_members"], linewidth=1.6, color=color)
        # The change is the sum of net_members_changed, as in the "biggest movers" list.
        last, change = int(rows["total_members"].iloc[-1]), int(rows["net_members_changed"].sum())
        before = last - change
        share = f" ({change / before:+.1%})" if before > 0 else ""
        since = rows["day"].iloc[0].strftime("%-d %b %Y")
        axes.set_title(f"{names.get(segment_id, segment_id)}: {last:,} members, {change:+,}{share} since {since}",
                       fontsize=9, loc="left")
        axes.set_ylabel("total members", fontsize=8)
        axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        axes.grid(alpha=0.3)
    date_axis(panels[-1][0])
    figure.suptitle(
        "Klaviyo segments: total members of the five biggest movers\n"
        "Each panel has its own y-axis, which does not start at zero: the titles give the change.",
        fontsize=11,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)

    # 2. Net members changed, summed over the 7 days up to each day (a rolling sum): one shared axis that includes zero, the
    # legend below the plot so it covers no line.
    net_path = path.with_name(NET_CHANGE_CHART)
    figure, axes = plt.subplots(figsize=(10, 4.6), layout="constrained")
    for index, segment_id in enumerate(segment_ids):
        rows = daily[segment_id]
        axes.plot(rows["day"], rows["net_members_changed"].rolling(7).sum(), linewidth=1.1, color=f"C{index}",
                  label=names.get(segment_id, segment_id))
    axes.axhline(0, color="black", linewidth=0.6)
    low, high = axes.get_ylim()
    axes.set_ylim(min(low, 0), max(high, 0))
    axes.set_ylabel("net members changed, last 7 days", fontsize=8)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:+,.0f}" if value else "0"))
    axes.grid(alpha=0.3)
    date_axis(axes)
    axes.set_title("Klaviyo segments: rolling 7-day net change in members of the five biggest movers", fontsize=11)
    figure.legend(loc="outside lower center", ncol=min(len(segment_ids), 5), fontsize=8, frameon=False)
    figure.savefig(net_path, dpi=110)
    plt.close(figure)

    for written in (path, net_path):
        print(f"chart: {written}")
    return [path, net_path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="your config.json; without it, the local emulator is used")
    parser.add_argument(
        "--chart",
        type=Path,
        default=Path("demo_output/total_members_by_segment.png"),
        help=f"where to write the total-members chart; the 7-day net change chart ({NET_CHANGE_CHART}) goes beside it",
    )
    parser.add_argument(
        "--emulator-port", type=int, default=0, help="port for the local Klaviyo emulator (default 0: any free port)"
    )
    args = parser.parse_args(argv)
    if args.config:
        config = json.loads(args.config.read_text())
        result = sync(config)
        chart(result, summarize(result), args.chart, account_timezone(config))
        return 0
    with demo_klaviyo(args.emulator_port) as config:
        result = sync(config)
        timezone = account_timezone(config)
    chart(result, summarize(result), args.chart, timezone)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
