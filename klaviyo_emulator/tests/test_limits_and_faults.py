"""Klaviyo's rate limits on a fake clock (no test sleeps), the injected faults, the call
records, and the admin routes a subprocess is controlled by.
"""

from __future__ import annotations

import pytest
import requests

from klaviyo_emulator import Emulator, Faults, RateLimits
from klaviyo_emulator.tests.support import (
    ACCOUNTS,
    HEADERS,
    KEY,
    SERIES,
    VALUES,
    FakeClock,
    error_of,
    make,
    post,
    series_body,
    values_body,
)

# --------------------------------------------------------------------------------------------
# Rate limits


def test_rate_limits_with_fake_clock() -> None:
    clock = FakeClock()
    with make(clock=clock, limits=RateLimits.klaviyo(1.0)) as emu:
        first = post(emu, SERIES, series_body())
        assert first.status_code == 200
        assert first.headers["RateLimit-Limit"] == "2"
        assert first.headers["RateLimit-Remaining"] == "1"
        assert first.headers["RateLimit-Reset"] == "60"
        burst = post(emu, VALUES, values_body({"key": "today"}))  # the two endpoints share the quota
        assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
        error = error_of(burst)
        assert error["code"] == "throttled"
        assert error["detail"] == "Request was throttled. Expected available in 1 second."
        clock.advance(1.0)
        second = post(emu, SERIES, series_body())
        assert second.status_code == 200 and second.headers["RateLimit-Remaining"] == "0"
        assert second.headers["RateLimit-Reset"] == "59"
        clock.advance(1.5)
        steady = post(emu, SERIES, series_body())
        assert steady.status_code == 429 and steady.headers["Retry-After"] == "58"
        assert "Expected available in 58 seconds." in error_of(steady)["detail"]
        clock.advance(57.5)
        assert post(emu, SERIES, series_body()).status_code == 200
        assert [c.status for c in emu.report_calls(status=None)] == [200, 429, 200, 429, 200]
        assert len(emu.report_calls()) == 3 and len(emu.report_calls(429)) == 2


def test_daily_limit_retry_after_is_hours() -> None:
    clock = FakeClock()
    with make(clock=clock, limits=RateLimits(burst=100, steady=100, daily=2)) as emu:
        assert post(emu, SERIES, series_body()).status_code == 200
        clock.advance(3600)
        assert post(emu, SERIES, series_body()).status_code == 200
        clock.advance(60)
        throttled = post(emu, SERIES, series_body())
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) == 86400 - 3660
        # The segments list has its own, much larger quota.
        assert requests.get(emu.base_url + "/api/segments", headers=HEADERS, timeout=10).status_code == 200
        emu.set_limits(None)
        assert post(emu, SERIES, series_body()).status_code == 200


def test_klaviyo_limits_scale() -> None:
    limits = RateLimits.klaviyo(60)
    assert (limits.burst, limits.steady, limits.daily) == (1, 2, 225)
    assert limits.steady_window == pytest.approx(1.0) and limits.daily_window == pytest.approx(1440.0)


def test_klaviyo_limits_burst_time_scale() -> None:
    limits = RateLimits.klaviyo(60, burst_time_scale=1.0)
    assert limits.burst_window == pytest.approx(1.0) and limits.steady_window == pytest.approx(1.0)
    assert limits.daily_window == pytest.approx(1440.0)
    assert RateLimits.klaviyo(60) == RateLimits.klaviyo(60, None)
    assert RateLimits.klaviyo(60).burst_window == pytest.approx(1 / 60)
    assert (RateLimits().list_burst, RateLimits().list_steady) == (75, 750)
    assert (RateLimits().accounts_burst, RateLimits().accounts_steady) == (1, 15)
    with pytest.raises(ValueError):
        RateLimits.klaviyo(60, burst_time_scale=0)
    clock = FakeClock()
    with make(segments=2, clock=clock, limits=limits) as emulator:
        assert post(emulator, SERIES, series_body()).status_code == 200
        clock.advance(0.5)
        burst = post(emulator, SERIES, series_body())
        assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
        clock.advance(0.5)
        assert post(emulator, SERIES, series_body()).status_code == 200
        # Admin: the same limits by JSON.
        admin = requests.post(emulator.base_url + "/__admin/limits", json={"time_scale": 60, "burst_time_scale": 1},
                              timeout=10)
        assert admin.json()["limits"]["burst_window"] == pytest.approx(1.0)
        assert admin.json()["limits"]["steady_window"] == pytest.approx(1.0)


def test_accounts_rate_limits_are_their_own_bucket() -> None:
    clock = FakeClock()
    with make(segments=3, clock=clock, limits=RateLimits.klaviyo()) as emulator:
        url = emulator.base_url + ACCOUNTS
        first = requests.get(url, headers=HEADERS, timeout=10)
        assert first.status_code == 200
        assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("15", "14")
        burst = requests.get(url, headers=HEADERS, timeout=10)
        assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
        assert "RateLimit-Limit" not in burst.headers
        assert post(emulator, SERIES, series_body()).status_code == 200  # reports have their own quota
        statuses = []
        for _ in range(15):
            clock.advance(1.0)
            statuses.append(requests.get(url, headers=HEADERS, timeout=10).status_code)
        assert statuses == [200] * 14 + [429]  # 15 per minute


def test_rate_limit_headers_on_every_admitted_answer() -> None:
    clock = FakeClock()
    with make(segments=3, clock=clock, limits=RateLimits(burst=100, steady=100, daily=1000)) as emulator:
        listing = requests.get(emulator.base_url + "/api/segments", headers=HEADERS, timeout=10)
        assert listing.headers["RateLimit-Limit"] == "750" and listing.headers["RateLimit-Remaining"] == "749"
        bad_listing = requests.get(emulator.base_url + "/api/segments", params={"sort": "color"}, headers=HEADERS,
                                   timeout=10)
        assert bad_listing.status_code == 400 and bad_listing.headers["RateLimit-Remaining"] == "748"
        invalid_body = post(emulator, SERIES, series_body(stats=[]))
        assert invalid_body.status_code == 400
        assert (invalid_body.headers["RateLimit-Limit"], invalid_body.headers["RateLimit-Remaining"]) == ("100", "99")
        assert invalid_body.headers["RateLimit-Reset"] == "60"
        values = post(emulator, VALUES, values_body({"key": "today"}))
        assert values.status_code == 200 and values.headers["RateLimit-Remaining"] == "98"
        emulator.set_faults(Faults(fail_rate=1.0))
        failed = post(emulator, SERIES, series_body())
        assert failed.status_code == 503 and failed.headers["RateLimit-Remaining"] == "97"
        emulator.set_faults(Faults())
        # Refused before admission: no RateLimit headers (and no quota used).
        unauthenticated = post(emulator, SERIES, series_body(), {**HEADERS, "Authorization": "Klaviyo-API-Key x"})
        assert unauthenticated.status_code == 401 and "RateLimit-Limit" not in unauthenticated.headers
    with make(segments=3) as unlimited:
        for response in (post(unlimited, SERIES, series_body()),
                         requests.get(unlimited.base_url + "/api/segments", headers=HEADERS, timeout=10),
                         requests.get(unlimited.base_url + ACCOUNTS, headers=HEADERS, timeout=10)):
            assert response.status_code == 200
            assert not any(name.lower().startswith("ratelimit") for name in response.headers)


# --------------------------------------------------------------------------------------------
# Faults


def test_fail_rate_gives_503(fresh: Emulator) -> None:
    fresh.set_faults(Faults(fail_rate=1.0))
    response = post(fresh, SERIES, series_body())
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "service_unavailable" and "MetricServiceRetryableError" in error["detail"]
    # Invalid bodies still get their 400 first.
    assert post(fresh, SERIES, series_body(stats=[])).status_code == 400


def test_drop_rate_closes_the_connection(fresh: Emulator) -> None:
    fresh.set_faults(Faults(drop_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        post(fresh, SERIES, series_body())
    assert fresh.calls[-1].status == 0


def test_fault_draws_are_seeded(fresh: Emulator) -> None:
    outcomes = []
    for _ in range(2):
        fresh.set_faults(Faults(fail_rate=0.5, seed=3))
        outcomes.append([post(fresh, SERIES, series_body(ids=fresh.segment_ids[:1])).status_code for _ in range(8)])
    assert outcomes[0] == outcomes[1] and {200, 503} == set(outcomes[0])


def test_daily_exhausted(fresh: Emulator) -> None:
    fresh.set_faults(Faults(daily_exhausted=True))
    response = post(fresh, VALUES, values_body({"key": "today"}))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 3600
    assert error_of(response)["code"] == "throttled"


def test_echo_request_in_errors_leaks_headers(fresh: Emulator) -> None:
    fresh.set_faults(Faults(echo_request_in_errors=True))
    response = post(fresh, SERIES, series_body(stats=[]))
    assert response.status_code == 400 and KEY in response.text
    assert error_of(response)["meta"]["request_headers"]["Authorization"] == f"Klaviyo-API-Key {KEY}"


@pytest.mark.parametrize("kind", ["missing_statistic", "short_date_times", "wrong_type", "not_json"])
def test_malformed_responses(fresh: Emulator, kind: str) -> None:
    fresh.set_faults(Faults(malformed=kind))
    response = post(fresh, SERIES, series_body(ids=fresh.segment_ids[:2]))
    assert response.status_code == 200
    if kind == "not_json":
        with pytest.raises(ValueError):
            response.json()
        return
    attributes = response.json()["data"]["attributes"]
    stats = attributes["results"][0]["statistics"]
    if kind == "missing_statistic":
        assert "total_members" not in stats
    elif kind == "short_date_times":
        assert len(attributes["date_times"]) == len(stats["total_members"]) - 1
    else:
        assert stats["total_members"] == "n/a"


def test_call_records(fresh: Emulator) -> None:
    ids = fresh.segment_ids[:3]
    post(fresh, SERIES, series_body(ids=ids))
    (call,) = fresh.report_calls()
    assert call.segment_ids == ids and call.interval == "daily" and call.method == "POST"
    assert call.timeframe == {"start": "2024-01-01T00:00:00Z", "end": "2024-01-10T00:00:00Z"}
    assert call.headers["Authorization"] == f"Klaviyo-API-Key {KEY}"
    fresh.reset_calls()
    assert fresh.calls == []


# --------------------------------------------------------------------------------------------
# Admin


def test_admin_endpoints(fresh: Emulator) -> None:
    base = fresh.base_url
    post(fresh, SERIES, series_body(ids=fresh.segment_ids[:2]))
    requests.get(base + "/api/segments", headers=HEADERS, timeout=10)
    stats = requests.get(base + "/__admin/stats", timeout=10).json()
    assert stats["counts"]["POST /api/segment-series-reports"] == {"200": 1}
    assert stats["counts"]["GET /api/segments"] == {"200": 1}
    assert stats["report_calls"][0]["segment_ids"] == 2
    assert requests.post(base + "/__admin/faults", json={"fail_rate": 1.0}, timeout=10).status_code == 200
    assert post(fresh, SERIES, series_body()).status_code == 503
    assert requests.post(base + "/__admin/faults", json={"bogus": 1}, timeout=10).status_code == 400
    assert requests.post(base + "/__admin/faults", json={}, timeout=10).status_code == 200
    assert requests.post(base + "/__admin/limits", json={"burst": 1, "steady": 1, "daily": 1}, timeout=10).ok
    assert post(fresh, SERIES, series_body()).status_code == 200
    assert post(fresh, SERIES, series_body()).status_code == 429
    assert requests.post(base + "/__admin/limits", data="null", timeout=10).json() == {"limits": None}
    assert post(fresh, SERIES, series_body()).status_code == 200
    assert requests.post(base + "/__admin/reset", timeout=10).ok
    assert requests.get(base + "/__admin/stats", timeout=10).json()["total_calls"] == 0
