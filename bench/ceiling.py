"""The raw ceiling: the least a Python program must do to produce the connector's output.

A plain loop with ``requests``: it lists the segments (the same paged GET), sends the same report
calls (the fewest windows, the same batches of 100 ids, the same JSON bodies and headers), parses each
response and writes one Airbyte RECORD line per segment per bucket. No framework, no schema, no
state; stdlib ``json`` both ways (compact, as the CDK writes), as a hand-written script would.

    python -m bench.ceiling --base-url http://127.0.0.1:8765 --interval daily \\
        --start 2024-01-01T00:00:00 --end 2025-01-01T00:00:00 --out /tmp/ceiling.jsonl
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import requests
import yaml

from bench.minimum import ONE_SECOND, SEGMENTS_PER_CALL, fewest_calls  # stdlib only, like this module

REPO = Path(__file__).resolve().parents[1]
JSON_API = "application/vnd.api+json"
STATISTICS = ("total_members", "members_added", "members_removed", "net_members_changed")
COMPANY_TIMEZONE = "America/New_York"
SEGMENT_FIELDS = "name,created,updated,is_active,is_processing,is_starred"


def rfc3339(wall: dt.datetime) -> str:
    """A company-local wall time with its offset (Klaviyo requires one and reads the wall time)."""
    return wall.replace(tzinfo=ZoneInfo(COMPANY_TIMEZONE)).isoformat()


def api_revision() -> str:
    """The revision the connector pins (read from its manifest, so both send the same header)."""
    manifest = yaml.safe_load((REPO / "source_klaviyo_segments" / "manifest.yaml").read_text())
    return str(manifest["definitions"]["api_revision"])


def list_segment_ids(session: requests.Session, base_url: str, headers: dict[str, str]) -> tuple[list[str], int]:
    ids: list[str] = []
    url: str | None = f"{base_url}/api/segments"
    params: dict[str, str] | None = {"fields[segment]": SEGMENT_FIELDS}
    calls = 0
    while url:
        response = session.get(url, headers=headers, params=params, timeout=60)
        calls += 1
        response.raise_for_status()
        body = response.json()
        ids += [item["id"] for item in body["data"]]
        url, params = body.get("links", {}).get("next"), None
    return ids, calls


def report_body(kind: str, **attributes: Any) -> dict[str, Any]:
    """A JSON:API report request: ``{"data": {"type": kind, "attributes": attributes}}``."""
    return {"data": {"type": kind, "attributes": attributes}}


def any_of(segment_ids: Sequence[str]) -> str:
    """Klaviyo's filter on several segment ids: ``any(segment_id,["A","B"])``."""
    return 'any(segment_id,["' + '","'.join(segment_ids) + '"])'


def run_ceiling(
    base_url: str,
    api_key: str,
    interval: str,
    start: dt.datetime,
    end: dt.datetime,
    out_path: Path,
    statistics: Sequence[str] = STATISTICS,
) -> dict[str, Any]:
    started = time.perf_counter()
    session = requests.Session()
    headers = {"Authorization": f"Klaviyo-API-Key {api_key}", "revision": api_revision(), "Accept": JSON_API}
    post_headers = {**headers, "Content-Type": JSON_API}
    ids, list_calls = list_segment_ids(session, base_url, headers)
    batches = [ids[at:at + SEGMENTS_PER_CALL] for at in range(0, len(ids), SEGMENTS_PER_CALL)]
    report_calls = rows = 0
    with open(out_path, "w") as out:
        for window_start, window_end in fewest_calls(interval, start, end, COMPANY_TIMEZONE, len(ids)).windows:
            first, last = rfc3339(window_start), rfc3339(window_end - ONE_SECOND)
            for batch in batches:
                response = session.post(
                    f"{base_url}/api/segment-series-reports",
                    data=json.dumps(report_body("segment-series-report", statistics=list(statistics), interval=interval,
                                                timeframe={"start": first, "end": last}, filter=any_of(batch))),
                    headers=post_headers,
                    timeout=300,
                )
                report_calls += 1
                response.raise_for_status()
                attributes = response.json()["data"]["attributes"]
                date_times = attributes["date_times"]
                emitted_at = int(time.time() * 1000)
                lines = []
                for result in attributes["results"]:
                    segment_id = result["groupings"]["segment_id"]
                    columns = [result["statistics"][name] for name in statistics]
                    for index, date_time in enumerate(date_times):
                        if not first[:19] <= date_time[:19] <= last[:19]:  # the bucket belongs to another window
                            continue
                        row = {"segment_id": segment_id, "interval": interval, "date_time": date_time}
                        for name, column in zip(statistics, columns, strict=True):
                            row[name] = column[index]
                        record = {"stream": "segment_series", "data": row, "emitted_at": emitted_at}
                        lines.append(json.dumps({"type": "RECORD", "record": record}, separators=(",", ":")))
                rows += len(lines)
                if lines:
                    out.write("\n".join(lines) + "\n")
    return {"rows": rows, "report_calls": report_calls, "list_calls": list_calls, "segments": len(ids),
            "seconds": time.perf_counter() - started}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", default="pk_emulator_key")
    parser.add_argument("--interval", default="daily", choices=("hourly", "daily", "weekly", "monthly"))
    parser.add_argument("--start", type=dt.datetime.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.datetime.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    summary = run_ceiling(args.base_url, args.api_key, args.interval, args.start, args.end, args.out)
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
