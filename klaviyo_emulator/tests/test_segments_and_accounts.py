"""GET /api/segments (pages, sparse fields, filters) and GET /api/accounts (its shape, the
timezone, the accounts:read scope).
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import requests

from klaviyo_emulator import Emulator
from klaviyo_emulator.tests.support import ACCOUNTS, HEADERS, SERIES, error_of, make, post, series_body

# --------------------------------------------------------------------------------------------
# Segments listing


def test_segments_pagination_and_fields(emu: Emulator) -> None:
    url: str | None = emu.base_url + "/api/segments/?fields[segment]=name,created,updated,is_active,is_processing,is_starred"
    pages = []
    while url:
        response = requests.get(url, headers=HEADERS, timeout=10)
        assert response.status_code == 200
        pages.append(response.json())
        url = response.json()["links"]["next"]
    assert [len(p["data"]) for p in pages] == [10, 10, 5]
    items = [item for page in pages for item in page["data"]]
    assert [item["id"] for item in items] == emu.segment_ids
    for item in items:
        assert item["type"] == "segment"
        assert set(item["attributes"]) == {"name", "created", "updated", "is_active", "is_processing", "is_starred"}
        assert datetime.fromisoformat(item["attributes"]["created"]).tzinfo is not None
    assert any(not item["attributes"]["is_active"] for item in items)
    assert any(item["attributes"]["is_starred"] for item in items)
    assert "definition" in requests.get(emu.base_url + "/api/segments", headers=HEADERS, timeout=10).json()["data"][0][
        "attributes"]


def test_segments_filters(emu: Emulator) -> None:
    wanted = emu.segment_ids[4:7]
    response = requests.get(emu.base_url + "/api/segments", params={"filter": "any(id," + json.dumps(wanted) + ")"},
                            headers=HEADERS, timeout=10)
    assert [item["id"] for item in response.json()["data"]] == wanted
    response = requests.get(emu.base_url + "/api/segments", params={"filter": f'equals(id,"{wanted[0]}")'},
                            headers=HEADERS, timeout=10)
    assert [item["id"] for item in response.json()["data"]] == wanted[:1]
    response = requests.get(emu.base_url + "/api/segments", params={"filter": 'equals(color,"red")'},
                            headers=HEADERS, timeout=10)
    assert response.status_code == 400 and error_of(response)["source"] == {"parameter": "filter"}


# --------------------------------------------------------------------------------------------
# Accounts


def test_accounts_endpoint_shape(emu: Emulator) -> None:
    response = requests.get(emu.base_url + ACCOUNTS, params={"fields[account]": "timezone"}, headers=HEADERS,
                            timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/vnd.api+json"
    document = response.json()
    assert set(document) == {"data", "links"} and document["links"]["self"].startswith(emu.base_url + ACCOUNTS)
    (account,) = document["data"]
    assert account["type"] == "account" and isinstance(account["id"], str) and account["id"]
    assert account["attributes"] == {"timezone": "America/New_York"}
    assert account["links"]["self"].startswith("http")
    full = requests.get(emu.base_url + ACCOUNTS + "/", headers=HEADERS, timeout=10).json()["data"][0]["attributes"]
    assert {"test_account", "contact_information", "timezone", "preferred_currency", "public_api_key",
            "locale"} <= set(full)
    assert {"default_sender_name", "default_sender_email", "organization_name", "street_address"} <= set(
        full["contact_information"])
    nested = requests.get(emu.base_url + ACCOUNTS, headers=HEADERS, timeout=10,
                          params={"fields[account]": "id,locale,contact_information.street_address.city"})
    assert nested.json()["data"][0]["attributes"] == {"locale": "en-US",
                                                      "contact_information": {"street_address": {"city": "Boston"}}}
    bad = requests.get(emu.base_url + ACCOUNTS, params={"fields[account]": "timezone,bogus"}, headers=HEADERS,
                       timeout=10)
    assert bad.status_code == 400 and error_of(bad)["source"] == {"parameter": "fields[account]"}
    assert requests.post(emu.base_url + ACCOUNTS, headers=HEADERS, timeout=10).status_code == 405


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "Europe/London", "Australia/Sydney"])
def test_accounts_timezone_follows_config(zone: str) -> None:
    with make(segments=1, timezone=zone) as emulator:
        document = requests.get(emulator.base_url + ACCOUNTS, params={"fields[account]": "timezone"},
                                headers=HEADERS, timeout=10).json()
        assert document["data"][0]["attributes"]["timezone"] == zone


def test_accounts_scope() -> None:
    with make(segments=3, accounts_scope=False) as emulator:
        response = requests.get(emulator.base_url + ACCOUNTS, headers=HEADERS, timeout=10)
        assert response.status_code == 403
        error = error_of(response)
        assert error["code"] == "permission_denied" and "accounts:read" in error["detail"]
        assert requests.get(emulator.base_url + "/api/segments", headers=HEADERS, timeout=10).status_code == 200
        assert post(emulator, SERIES, series_body()).status_code == 200
        noscope = {**HEADERS, "Authorization": "Klaviyo-API-Key pk_emulator_noscope"}
        assert requests.get(emulator.base_url + ACCOUNTS, headers=noscope, timeout=10).status_code == 403
    with make(segments=3) as emulator:
        noscope = {**HEADERS, "Authorization": "Klaviyo-API-Key pk_emulator_noscope"}
        assert requests.get(emulator.base_url + ACCOUNTS, headers=noscope, timeout=10).status_code == 403
        assert requests.get(emulator.base_url + ACCOUNTS, headers=HEADERS, timeout=10).status_code == 200
