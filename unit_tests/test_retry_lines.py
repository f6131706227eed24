"""A host that fails is said while it happens: before each retry of an answered 5XX or 429 (without
``Retry-After``), and of a request that got no answer, one line names the host, the attempt to come
out of how many, and the wait the CDK then sleeps (``AnswerAwareBackoff``). The waits said are the
waits slept, and no line announces a retry the CDK does not make."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock
import yaml
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.declarative.interpolation import InterpolatedString
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read

from source_klaviyo_segments import SourceKlaviyoSegments
from source_klaviyo_segments.components import RETRY_LOG, AnswerAwareBackoff
from unit_tests import klaviyo_mock as km
from unit_tests.klaviyo_mock import FakeKlaviyo

SERIES_URL = f"{km.BASE_URL}/api/segment-series-reports"
# 2024-01-01..2024-04-28: two daily windows; the second starts here (as in test_errors.py).
END_DATE, SECOND_WINDOW = "2024-04-28", "2024-02-29T00:00:00"
MANIFEST = yaml.safe_load((Path(km.__file__).parents[1] / "source_klaviyo_segments" / "manifest.yaml").read_text())
LINE = re.compile(r"^(?P<what>.+); trying again in (?P<wait>[\d.]+) s \(attempt (?P<attempt>\d+) of (?P<of>\d+)\)\.$")
DROP = "no answer"


@pytest.fixture()
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The CDK's backoff sleeps, recorded and not slept."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)
    return waits


def read_with(answers: list[Any]) -> EntrypointOutput:
    """A daily series read whose second window's call first gets ``answers`` (a status, or
    ``DROP``: the connection closes without an answer), then the fake's real answer."""
    config = km.config(end_date=END_DATE)
    fake = FakeKlaviyo(["SEG001", "SEG002"])
    pending = list(answers)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        real_answer = fake._series

        def answer(request: Any, context: Any) -> Any:
            start = json.loads(request.body)["data"]["attributes"]["timeframe"]["start"][:19]
            if start == SECOND_WINDOW and pending:
                status = pending.pop(0)
                if status == DROP:  # as requests raises it: with the request it sent (the same on each retry)
                    raise requests.ConnectionError("Connection aborted.", request=request._request)
                context.status_code = status
                return {"errors": [{"status": status, "code": "error", "title": "Failed.", "detail": "Try again."}]}
            return real_answer(request, context)

        mocker.post(SERIES_URL, json=answer)
        return read(
            SourceKlaviyoSegments(config=config), config, km.catalog("segment_series", SyncMode.incremental),
            expecting_exception=True,
        )  # fmt: skip


def retry_lines(output: EntrypointOutput) -> list[tuple[str, float, int, int]]:
    said = []
    for message in output.logs:
        match = LINE.match(message.log.message)
        if match:
            assert message.log.level.name == "WARN", message.log
            said.append((match["what"], float(match["wait"]), int(match["attempt"]), int(match["of"])))
    return said


def test_each_retry_after_a_5xx_is_said_with_the_wait_the_cdk_sleeps(slept: list[float]) -> None:
    output = read_with([503, 502, 503])
    assert not output.errors, output.errors
    said = retry_lines(output)
    host = km.BASE_URL
    assert [(what, attempt, of) for what, _, attempt, of in said] == [
        (f"{host} answered 503 Service Unavailable", 2, 6),
        (f"{host} answered 502 Bad Gateway", 3, 6),
        (f"{host} answered 503 Service Unavailable", 4, 6),
    ]
    # factor 2 x 2^attempt, plus the second the CDK adds; exactly what it then sleeps, in order.
    assert [wait for _, wait, _, _ in said] == [5, 9, 17]
    assert [s for s in slept if s >= 1] == [5, 9, 17]


def test_a_429_without_retry_after_is_said_too(slept: list[float]) -> None:
    output = read_with([429])
    assert not output.errors, output.errors
    assert [(what, wait, attempt) for what, wait, attempt, _ in retry_lines(output)] == [
        (f"{km.BASE_URL} answered 429 Too Many Requests", 5, 2)
    ]


def test_no_line_announces_a_retry_the_cdk_does_not_make(slept: list[float]) -> None:
    output = read_with([503] * 10)
    assert output.errors  # max_retries 5: six attempts, then the request fails
    assert [attempt for _, _, attempt, _ in retry_lines(output)] == [2, 3, 4, 5, 6]
    assert len([s for s in slept if s >= 1]) == 5


def test_a_request_without_an_answer_is_said_with_the_cdks_own_waits(slept: list[float]) -> None:
    output = read_with([DROP, DROP, DROP])
    assert not output.errors, output.errors
    said = retry_lines(output)
    assert said == [(f"Nothing answered at {km.BASE_URL} (ConnectionError)", wait, attempt, 6)
                    for wait, attempt in ((1, 2), (2, 3), (4, 4))]  # fmt: skip
    assert [s for s in slept if s >= 1] == [1, 2, 4]  # the CDK's backoff.expo, which the lines name
    assert not any("Rate limit" in m.log.message for m in output.logs)  # no answer is not a rate limit


def test_after_a_request_went_unanswered_its_answered_retries_are_counted_as_the_cdk_counts_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The CDK's loop for answered retries starts afresh after a retry without an answer: after one
    # drop, the request may be tried up to attempt 7 (1 + six answered tries). As requests sends it,
    # the answer and the error both carry the one request object the CDK sends again each time.
    backoff = AnswerAwareBackoff(config={}, parameters={}, factor=2, attempts_without_answer=6, attempts_with_answer=6)
    sent = requests.Request("POST", f"{km.BASE_URL}/api/segment-series-reports", json={}).prepare()
    answered = requests.Response()
    answered.status_code, answered.request = 503, sent
    dropped = requests.ConnectionError("Connection aborted.", request=sent)
    outcomes = [dropped, answered, answered, dropped, *[answered] * 6]
    with caplog.at_level(logging.WARNING, logger=RETRY_LOG.name):
        waits = [backoff.backoff_time(outcome, attempt) for attempt, outcome in enumerate(outcomes, start=1)]
    said = [LINE.match(record.getMessage()) for record in caplog.records]
    assert [(float(m["wait"]), int(m["attempt"]), int(m["of"])) for m in said if m] == [
        (1, 2, 6), (9, 3, 7), (17, 4, 7),  # one drop, then answers: up to attempt 7
        (2, 5, 6),  # the second drop: the CDK's second wait without an answer
        (65, 6, 10), (129, 7, 10), (257, 8, 10), (513, 9, 10), (1025, 10, 10),  # six answers in a row at most
    ]  # fmt: skip
    assert waits[-1] is not None and len(said) == len(outcomes) - 1  # the last answer: the CDK gives up, unsaid


def test_each_manifest_backoff_names_the_attempts_its_error_handler_allows() -> None:
    """``attempts_with_answer`` is the error handler's ``max_retries`` + 1 (a strategy is not told
    it), and a request without an answer ends by its ``attempts_without_answer``-th attempt, which
    the handler's retries must reach, in a read and in a check."""
    definitions = MANIFEST["definitions"]
    handlers = [definitions["base_requester"]["error_handler"], definitions["account_requester"]["error_handler"]]
    for handler in handlers:
        (backoff,) = [s for s in handler["backoff_strategies"] if s["class_name"].endswith(".AnswerAwareBackoff")]
        assert int(backoff["attempts_with_answer"]) == handler["max_retries"] + 1, handler
        for config in ({}, {"_checking": True}):
            without = int(InterpolatedString.create(str(backoff["attempts_without_answer"]), parameters={}).eval(config))
            assert 1 < without <= handler["max_retries"] + 1, (handler, config)
