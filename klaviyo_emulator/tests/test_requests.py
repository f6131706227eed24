"""What the emulator accepts and refuses before it answers: authentication, the revision and
content-type headers, routes, and each rule a report body must follow (the official SDK's models,
then the rules they do not carry), filters included.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from klaviyo_emulator import Emulator
from klaviyo_emulator.tests.support import (
    HEADERS,
    KEY,
    SERIES,
    VALUES,
    _with,
    error_of,
    post,
    series_body,
    series_table,
    values_body,
    values_table,
)

# --------------------------------------------------------------------------------------------
# Headers and routes


@pytest.mark.parametrize(
    "authorization, status, code",
    [
        (None, 401, "not_authenticated"),
        ("Klaviyo-API-Key pk_wrong", 401, "not_authenticated"),
        (f"Bearer {KEY}", 401, "not_authenticated"),
        ("Klaviyo-API-Key pk_emulator_noscope", 403, "permission_denied"),
    ],
)
def test_auth_errors(emu: Emulator, authorization: str | None, status: int, code: str) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "Authorization"}
    if authorization:
        headers["Authorization"] = authorization
    for response in (post(emu, SERIES, series_body(), headers),
                     requests.get(emu.base_url + "/api/segments", headers=headers, timeout=10)):
        assert response.status_code == status
        assert error_of(response)["code"] == code


@pytest.mark.parametrize("revision", [None, "2023-02-22", "2023-02-22.pre", "2025-07-15.beta", "latest"])
def test_revision_must_be_known(emu: Emulator, revision: str | None) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "revision"}
    if revision:
        headers["revision"] = revision
    response = post(emu, SERIES, series_body(), headers)
    assert response.status_code == 400
    assert error_of(response)["source"] == {"parameter": "revision"}


@pytest.mark.parametrize("revision", ["2024-10-15", "2026-10-15", "2026-07-15.pre", "2025-07-15.pre"])
def test_known_revisions_accepted(emu: Emulator, revision: str) -> None:
    assert post(emu, SERIES, series_body(), {**HEADERS, "revision": revision}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded", None])
def test_report_content_type_must_be_json_api(emu: Emulator, content_type: str | None) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "Content-Type"}
    if content_type:
        headers["Content-Type"] = content_type
    response = post(emu, SERIES, series_body(), headers)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_report_content_type_application_json_accepted(emu: Emulator) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json"):
        assert post(emu, SERIES, series_body(), {**HEADERS, "Content-Type": content_type}).status_code == 200


def test_routes_with_and_without_slash_and_unknown_path(emu: Emulator) -> None:
    assert post(emu, "/api/segment-series-reports", series_body()).status_code == 200
    assert post(emu, "/api/segment-values-reports", values_body({"key": "last_7_days"})).status_code == 200
    assert requests.get(emu.base_url + "/api/segments/", headers=HEADERS, timeout=10).status_code == 200
    response = requests.get(emu.base_url + "/api/lists/", headers=HEADERS, timeout=10)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# --------------------------------------------------------------------------------------------
# Body validation


@pytest.mark.parametrize(
    "body, pointer, fragment",
    [
        ({"nodata": {}}, "/data", "SegmentSeriesRequestDTO"),
        ({"data": {"type": "segment-series-report"}}, "/data/attributes", "attributes"),
        (series_body(stats=["bogus"]), "/data/attributes/statistics", "must be one of"),
        ({"data": {"type": "segment-series-report", "attributes": {"statistics": ["total_members"],
                                                                      "timeframe": {"key": "today"}}}},
         "/data/attributes/interval", "interval"),
        (series_body(interval="yearly"), "/data/attributes/interval", "must be one of enum values"),
        (series_body(filter=["not", "a", "string"]), "/data/attributes/filter", "string"),
    ],
)
def test_sdk_model_rejections(emu: Emulator, body: Any, pointer: str, fragment: str) -> None:
    response = post(emu, SERIES, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid" and error["title"] == "Invalid input."
    assert error["source"]["pointer"] == pointer
    assert fragment in error["detail"]


def test_malformed_json_body_rejected(emu: Emulator) -> None:
    response = requests.post(emu.base_url + SERIES, data=b"{not json", headers=HEADERS, timeout=10)
    assert response.status_code == 400
    assert "Malformed JSON" in error_of(response)["detail"]


RULES = [
    # (label, path, body, fragment of detail, pointer)
    ("type mismatch", SERIES, values_body({"key": "today"}), "expected 'segment-series-report'", "/data/type"),
    ("type mismatch values", VALUES, series_body(), "expected 'segment-values-report'", "/data/type"),
    ("unknown key", SERIES, _with({"timeframe": {"key": "last_2_days"}}), "Invalid timeframe key 'last_2_days'",
     "/data/attributes/timeframe/key"),
    ("key and start", SERIES, _with({"timeframe": {"key": "today", "start": "2024-01-01T00:00:00",
                                                   "end": "2024-01-02T00:00:00"}}), "not both",
     "/data/attributes/timeframe"),
    ("start only", SERIES, _with({"timeframe": {"start": "2024-01-01T00:00:00"}}), "missing end",
     "/data/attributes/timeframe"),
    ("empty timeframe", SERIES, _with({"timeframe": {}}), "missing key or start/end", "/data/attributes/timeframe"),
    ("extra member", SERIES, _with({"timeframe": {"start": "2024-01-01", "end": "2024-01-02", "tz": "UTC"}}),
     "unexpected member(s) tz", "/data/attributes/timeframe"),
    ("bad iso", SERIES, _with({"timeframe": {"start": "01/02/2024", "end": "2024-01-02T00:00:00"}}),
     "not a valid ISO 8601", "/data/attributes/timeframe/start"),
    ("start after end", SERIES, _with({"timeframe": {"start": "2024-01-05T00:00:00", "end": "2024-01-05T00:00:00"}}),
     "must be before timeframe.end", "/data/attributes/timeframe"),
    ("longer than a year", VALUES,
     _with({"timeframe": {"start": "2024-01-01T00:00:00", "end": "2025-01-01T01:00:00"}}, "values"),
     "cannot be longer than 1 year", "/data/attributes/timeframe"),
    ("before data start", SERIES, _with({"timeframe": {"start": "2023-05-31T23:00:00", "end": "2023-06-02T00:00:00"}}),
     "Data is unavailable before June 1st, 2023", "/data/attributes/timeframe/start"),
    ("hourly cap", SERIES, _with({"interval": "hourly", "timeframe": {"start": "2024-01-01T00:00:00",
                                                                    "end": "2024-01-08T01:00:00"}}),
     "If hourly is used, the timeframe cannot be longer than 7 days", "/data/attributes/timeframe"),
    ("daily cap", SERIES, _with({"interval": "daily", "timeframe": {"start": "2024-01-01T00:00:00",
                                                                  "end": "2024-03-02T00:00:00"}}),
     "If daily is used, the timeframe cannot be longer than 60 days", "/data/attributes/timeframe"),
    ("weekly cap", SERIES, _with({"interval": "weekly", "timeframe": {"start": "2024-01-01T00:00:00",
                                                                    "end": "2024-12-31T00:00:00"}}),
     "If weekly is used, the timeframe cannot be longer than 52 weeks", "/data/attributes/timeframe"),
    ("monthly cap", SERIES, _with({"interval": "monthly", "timeframe": {"start": "2024-01-01T00:00:00",
                                                                      "end": "2024-12-31T00:00:00"}}),
     "If monthly is used, the timeframe cannot be longer than 52 weeks", "/data/attributes/timeframe"),
    ("monthly cap on a key", SERIES, _with({"interval": "monthly", "timeframe": {"key": "last_12_months"}}),
     "If monthly is used", "/data/attributes/timeframe"),
    ("filter attribute", SERIES, _with({"filter": 'equals(list_id,"abc")'}), "'list_id' is not a valid filter field",
     "/data/attributes/filter"),
    ("filter operator", SERIES, _with({"filter": 'contains(segment_id,"abc")'}),
     "'contains' is not a valid operator", "/data/attributes/filter"),
    ("filter unclosed", SERIES, _with({"filter": 'any(segment_id,["abc"'}), "Invalid filter provided",
     "/data/attributes/filter"),
    ("filter unclosed single quote", SERIES, _with({"filter": "equals(segment_id,'abc)"}), "Invalid filter provided",
     "/data/attributes/filter"),
    ("filter bare value", SERIES, _with({"filter": "equals(segment_id,abc)"}), "must be a quoted string",
     "/data/attributes/filter"),
    ("filter any needs list", SERIES, _with({"filter": 'any(segment_id,"abc")'}), "takes a list",
     "/data/attributes/filter"),
    ("filter empty list", SERIES, _with({"filter": "any(segment_id,[])"}), "must not be empty",
     "/data/attributes/filter"),
    ("filter twice", SERIES, _with({"filter": 'equals(segment_id,"a"),equals(segment_id,"b")'}),
     "Only one filter can be used per attribute", "/data/attributes/filter"),
    ("filter empty", SERIES, _with({"filter": ""}), "filter is empty", "/data/attributes/filter"),
    ("no statistics", SERIES, _with({"statistics": []}), "statistics must not be empty",
     "/data/attributes/statistics"),
    ("repeated statistic", SERIES, _with({"statistics": ["total_members", "total_members"]}),
     "statistics must not repeat: total_members", "/data/attributes/statistics"),
]


@pytest.mark.parametrize("label, path, body, fragment, pointer", RULES, ids=[r[0] for r in RULES])
def test_validation_rules(emu: Emulator, label: str, path: str, body: Any, fragment: str, pointer: str) -> None:
    response = post(emu, path, body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["status"] == 400 and error["code"] == "invalid" and error["title"] == "Invalid input."
    assert fragment in error["detail"], error["detail"]
    assert error["source"] == {"pointer": pointer}
    assert set(error) == {"id", "status", "code", "title", "detail", "source", "meta"}


def test_filter_id_limit(emu: Emulator) -> None:
    ids = [f"x{i:05d}" for i in range(101)]
    response = post(emu, SERIES, series_body(ids=ids))
    assert response.status_code == 400
    assert "Max of 100" in error_of(response)["detail"] and "got 101" in error_of(response)["detail"]
    accepted = post(emu, SERIES, series_body(ids=emu.segment_ids[:5] + ids[:95]))
    assert accepted.status_code == 200
    # Unknown ids are simply absent.
    assert {r["groupings"]["segment_id"] for r in accepted.json()["data"]["attributes"]["results"]} == set(
        emu.segment_ids[:5])


def test_filter_forms_and_no_filter(emu: Emulator) -> None:
    one = emu.segment_ids[3]
    for text in (f'equals(segment_id,"{one}")', f'any( segment_id , [ "{one}" ] )'):
        table = series_table(post(emu, SERIES, _with({"filter": text})))
        assert {sid for sid, _ in table} == {one}
    # No filter: every segment of the account (undocumented by Klaviyo; the emulator's choice).
    table = series_table(post(emu, SERIES, series_body()))
    assert {sid for sid, _ in table} == set(emu.segment_ids)


def test_single_quoted_filters(emu: Emulator) -> None:
    a, b = emu.segment_ids[1], emu.segment_ids[2]
    for text, wanted in ((f"any(segment_id,['{a}','{b}'])", {a, b}), (f"equals(segment_id,'{a}')", {a}),
                         (f"any(segment_id,['{a}',\"{b}\"])", {a, b})):
        table = series_table(post(emu, SERIES, _with({"filter": text})))
        assert {sid for sid, _ in table} == wanted, text
        assert set(values_table(post(emu, VALUES, _with({"filter": text}, "values")))) == wanted
    listing = requests.get(emu.base_url + "/api/segments", params={"filter": f"any(id,['{a}','{b}'])"},
                           headers=HEADERS, timeout=10)
    assert [item["id"] for item in listing.json()["data"]] == [a, b]
