"""What the emulator's tests share: the settings they start it with, request bodies, and the
answers read back as tables. No test sleeps: rate-limit windows run on a FakeClock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import requests

from klaviyo_emulator import Emulator, EmulatorConfig

NOW = datetime(2025, 3, 1, 12, 0)
KEY = "pk_emulator_key"
HEADERS = {
    "Authorization": f"Klaviyo-API-Key {KEY}",
    "revision": "2025-07-15",
    "Content-Type": "application/vnd.api+json",
    "Accept": "application/vnd.api+json",
}
ALL_STATS = ["total_members", "members_added", "members_removed", "net_members_changed"]
SERIES = "/api/segment-series-reports/"
VALUES = "/api/segment-values-reports/"
ACCOUNTS = "/api/accounts"
# Klaviyo's longest timeframe per series interval.
CAPS = {"hourly": timedelta(days=7), "daily": timedelta(days=60), "weekly": timedelta(weeks=52),
        "monthly": timedelta(weeks=52)}


class FakeClock:
    """Monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(**overrides: Any) -> Emulator:
    settings: dict[str, Any] = {"segments": 25, "now": NOW, "seed": 7}
    settings.update(overrides)
    return Emulator(EmulatorConfig(**settings))


def aware(text: str) -> str:
    """`text` with a "Z" offset when it is a naive ISO date-time (the default require_offset=True
    refuses naive ones; Klaviyo ignores the offset anyway, reading the wall time in the company zone)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    return text + "Z" if parsed.tzinfo is None and "T" in text else text


def aware_timeframe(timeframe: dict[str, Any]) -> dict[str, Any]:
    return {k: aware(v) if k in ("start", "end") and isinstance(v, str) else v for k, v in timeframe.items()}


def series_body(start: str = "2024-01-01T00:00:00", end: str = "2024-01-10T00:00:00", interval: str = "daily",
                ids: list[str] | None = None, stats: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {"statistics": ALL_STATS if stats is None else stats,
                                  "timeframe": {"start": aware(start), "end": aware(end)}, "interval": interval}
    if ids is not None:
        attributes["filter"] = "any(segment_id," + json.dumps(ids) + ")"
    attributes.update(extra)
    return {"data": {"type": "segment-series-report", "attributes": attributes}}


def values_body(timeframe: dict[str, str], ids: list[str] | None = None,
                stats: list[str] | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"statistics": ALL_STATS if stats is None else stats,
                                  "timeframe": aware_timeframe(timeframe)}
    if ids is not None:
        attributes["filter"] = "any(segment_id," + json.dumps(ids) + ")"
    return {"data": {"type": "segment-values-report", "attributes": attributes}}


def post(emu: Emulator, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(emu.base_url + path, data=json.dumps(body), headers=headers or HEADERS, timeout=10)


def error_of(response: requests.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert len(errors) == 1
    return errors[0]


def series_table(response: requests.Response) -> dict[tuple[str, str], dict[str, int]]:
    """{(segment_id, date_time): {statistic: value}} from a series response."""
    assert response.status_code == 200, response.text
    attributes = response.json()["data"]["attributes"]
    table = {}
    for result in attributes["results"]:
        sid = result["groupings"]["segment_id"]
        stats = result["statistics"]
        for i, stamp in enumerate(attributes["date_times"]):
            table[(sid, stamp)] = {name: values[i] for name, values in stats.items()}
    return table


def values_table(response: requests.Response) -> dict[str, dict[str, int]]:
    assert response.status_code == 200, response.text
    return {r["groupings"]["segment_id"]: r["statistics"] for r in response.json()["data"]["attributes"]["results"]}


def _with(attributes: dict[str, Any], kind: str = "series") -> dict[str, Any]:
    base = series_body() if kind == "series" else values_body({"key": "last_30_days"})
    if isinstance(attributes.get("timeframe"), dict):
        attributes = {**attributes, "timeframe": aware_timeframe(attributes["timeframe"])}
    base["data"]["attributes"].update(attributes)
    return base

