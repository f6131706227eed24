"""The pacing decision, on a fake clock: how long a report call waits, and why.

Klaviyo's published report limits are 1 call a second (burst) and 2 calls per fixed minute
(steady). The pacer must keep a sync inside both before it sends, so that no call earns a 429,
and must not waste the minute: two calls go out in every window. The emulator's fixed-window
limiter (the same class that answers the end-to-end tests) stands in for Klaviyo here, driven by
the same fake clock, so no verdict depends on how busy the machine is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import requests

from klaviyo_emulator.ratelimit import REPORT_BUCKET, FixedWindowLimiter, RateLimits
from source_klaviyo_segments.components import ReportPacer, RetryAfterBackoff

REPORT_URL = "https://a.klaviyo.com/api/segment-series-reports"
SEGMENTS_URL = "https://a.klaviyo.com/api/segments"
# What the CDK's rate-limit handler sleeps on top of a Retry-After (airbyte_cdk/sources/streams/http/rate_limiting.py).
CDK_RETRY_AFTER_MARGIN = 1.0
ANSWER_SECONDS = 0.3  # how long Klaviyo takes to answer a report call, in the simulation


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answer(url: str, status: int, headers: dict[str, str] | None = None) -> tuple[requests.PreparedRequest, requests.Response]:
    request = requests.Request("POST", url).prepare()
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response.request = request
    return request, response


def limits(remaining: int, reset: int) -> dict[str, str]:
    return {"RateLimit-Limit": "2", "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset)}


def test_a_server_that_announces_no_limits_is_not_paced() -> None:
    clock = FakeClock()
    pacer = ReportPacer(clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait_for_report_slot()
        pacer.update_from_response(*answer(REPORT_URL, 200))
    assert clock.sleeps == []


def test_the_next_report_call_goes_one_second_after_the_previous_one_started() -> None:
    clock = FakeClock()
    pacer = ReportPacer(clock=clock, sleep=clock.sleep)
    pacer.wait_for_report_slot()
    first_start = clock.now
    clock.now += 0.15  # the answer took 0.15 s
    pacer.update_from_response(*answer(REPORT_URL, 200, limits(remaining=1, reset=45)))
    pacer.wait_for_report_slot()
    assert clock.sleeps == [pytest.approx(0.85)]
    assert clock.now == pytest.approx(first_start + 1.0)

    clock.now += 3.0  # a slow answer: the burst limit is long satisfied
    pacer.update_from_response(*answer(REPORT_URL, 200, limits(remaining=5, reset=40)))
    pacer.wait_for_report_slot()
    assert len(clock.sleeps) == 1


def test_a_used_up_minute_waits_exactly_until_the_reset_the_headers_name() -> None:
    clock = FakeClock()
    pacer = ReportPacer(clock=clock, sleep=clock.sleep)
    pacer.wait_for_report_slot()
    answered_at = clock.now + 0.2
    clock.now = answered_at
    pacer.update_from_response(*answer(REPORT_URL, 200, limits(remaining=0, reset=37)))
    pacer.wait_for_report_slot()
    assert clock.now == pytest.approx(answered_at + 37)  # never sooner, and not later
    # The reset opened a new window; its count is unknown until an answer says it.
    pacer.update_from_response(*answer(REPORT_URL, 200, limits(remaining=1, reset=60)))
    clock.now += 0.1
    pacer.wait_for_report_slot()
    assert clock.sleeps[-1] == pytest.approx(0.9)  # the burst limit, not another minute


def test_a_429_uses_up_no_slot_and_the_next_headers_correct_the_pacer() -> None:
    # The trace: 200 (1 left), then a 429 for the burst. The refused attempt must not make
    # the retry wait for the next minute: it goes once Retry-After has passed.
    clock = FakeClock()
    pacer = ReportPacer(clock=clock, sleep=clock.sleep)
    pacer.wait_for_report_slot()
    pacer.update_from_response(*answer(REPORT_URL, 200, limits(remaining=1, reset=59)))
    pacer.wait_for_report_slot()  # takes the window's last slot
    pacer.update_from_response(*answer(REPORT_URL, 429, {"Retry-After": "1"}))
    clock.now += 1 + CDK_RETRY_AFTER_MARGIN  # the error handler's wait
    waited_before = sum(clock.sleeps)
    pacer.wait_for_report_slot()  # the retry
    assert sum(clock.sleeps) == waited_before  # no minute-long wait for a slot the 429 did not use
    # The retry's answer says the window is now used up: the next call waits for its reset.
    pacer.update_from_response(*answer(REPORT_URL, 200, limits(remaining=0, reset=50)))
    pacer.wait_for_report_slot()
    assert clock.sleeps[-1] == pytest.approx(50)


def test_the_answers_of_other_requests_never_pace_report_calls() -> None:
    # GET /api/segments has limits of its own (the manifest's api_budget): its headers say nothing
    # about the report quota.
    clock = FakeClock()
    pacer = ReportPacer(clock=clock, sleep=clock.sleep)
    pacer.update_from_response(*answer(SEGMENTS_URL, 200, limits(remaining=0, reset=50)))
    for _ in range(3):
        pacer.wait_for_report_slot()
    assert clock.sleeps == []


@pytest.mark.parametrize("retry_after", ["1", "8", "599"])
def test_a_retry_after_is_waited_exactly(retry_after: str) -> None:
    request, response = answer(REPORT_URL, 429, {"Retry-After": retry_after})
    assert RetryAfterBackoff(config={}, parameters={}).backoff_time(response, 1) == float(retry_after)


@dataclass
class Run:
    admitted: list[float]
    throttled: int


def run_against_klaviyos_limits(calls: int, phase: float) -> Run:
    """``calls`` report calls paced by the pacer against the emulator's limiter at Klaviyo's real
    limits, on one fake clock; the first call comes ``phase`` seconds into a steady window. A 429
    is retried after Retry-After plus the CDK's margin, as the error handler does."""
    clock = FakeClock()
    limiter = FixedWindowLimiter(RateLimits.klaviyo(time_scale=1.0), clock)
    clock.now += phase
    pacer = ReportPacer(clock=clock, sleep=clock.sleep)
    admitted: list[float] = []
    throttled = 0
    while len(admitted) < calls:
        pacer.wait_for_report_slot()
        decision = limiter.check(REPORT_BUCKET)
        if decision.allowed:
            admitted.append(clock.now)
            clock.now += ANSWER_SECONDS
            pacer.update_from_response(*answer(REPORT_URL, 200, limits(decision.remaining, decision.reset)))
            clock.now += 0.2  # turning the answer into rows
        else:
            throttled += 1
            pacer.update_from_response(*answer(REPORT_URL, 429, {"Retry-After": str(decision.retry_after)}))
            clock.now += decision.retry_after + CDK_RETRY_AFTER_MARGIN
    return Run(admitted, throttled)


def ideal_schedule(first: float, calls: int, origin: float) -> list[float]:
    """When ``calls`` report calls could go at best: each a second after the previous one, at most
    two per fixed 60 s window (windows counted from ``origin``), the first at ``first``."""
    times = [first]
    while len(times) < calls:
        at = times[-1] + 1.0
        window = math.floor((at - origin) / 60)
        if sum(math.floor((t - origin) / 60) == window for t in times) >= 2:
            at = origin + (window + 1) * 60
        times.append(at)
    return times


@pytest.mark.parametrize("phase", [0.0, 0.4, 17.0, 58.9, 59.7])
def test_at_klaviyos_limits_calls_go_as_soon_as_the_fixed_windows_allow_and_none_is_refused(phase: float) -> None:
    run = run_against_klaviyos_limits(calls=7, phase=phase)
    assert run.throttled == 0
    origin = 1000.0
    ideal = ideal_schedule(run.admitted[0], 7, origin)
    for k, (at, best) in enumerate(zip(run.admitted, ideal, strict=True)):
        assert math.floor((at - origin) / 60) == math.floor((best - origin) / 60), (k, at - origin, best - origin)
        # RateLimit-Reset is whole seconds, counted from the answer (the safe reading): a window's
        # first call may start up to a second plus an answer's time after the window opens.
        assert best <= at <= best + 1.0 + ANSWER_SECONDS, (k, at - origin, best - origin)
