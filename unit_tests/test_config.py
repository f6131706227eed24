"""Issues 25 and 27: a config is refused with every problem at once, a sentence each, worded from
the spec's JSON schema; and the spec is the one home of Klaviyo's statistics, intervals and
timeframe keys (the components read them from it, the stream schemas are held equal to it, and it is
held equal to what Klaviyo publishes)."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import requests_mock
import yaml
from airbyte_cdk.sources.declarative.parsers.manifest_reference_resolver import ManifestReferenceResolver
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

import source_klaviyo_segments
from source_klaviyo_segments import components
from source_klaviyo_segments.components import (
    PrepareSyncConfig,
    RefuseConfigProblem,
    config_problem,
    config_problems,
    prepare_config,
)
from testkit.published import INTERVALS, STATISTICS, TIMEFRAME_KEYS
from unit_tests import klaviyo_mock as km

SPEC = km.SPEC
NOW = lambda: dt.datetime(2025, 3, 1)  # noqa: E731
MANIFEST = ManifestReferenceResolver().preprocess_manifest(
    yaml.safe_load(Path(source_klaviyo_segments.__file__).with_name("manifest.yaml").read_text(encoding="utf-8"))
)
VALID = {"api_key": "pk_test", "start_date": "2024-01-01", "end_date": "2024-03-01"}


def problems(**fields: Any) -> list[str]:
    config = {key: value for key, value in {**VALID, **fields}.items() if value is not None}
    return config_problems(config, SPEC, NOW)


# -- every problem at once ---------------------------------------------------------------------------

THREE_PROBLEMS = {"api_key": None, "start_date": "2024-02-30", "interval": "yearly"}
THREE_SENTENCES = [
    "`api_key` is missing: paste a Klaviyo private API key with the segments:read scope (Settings > API keys).",
    "`start_date` is '2024-02-30', which is not a real date or time: write it YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, "
    "such as 2024-01-01 or 2024-01-01T06:00:00.",
    "`interval` is 'yearly'; use one of hourly, daily, weekly, monthly.",
]


def test_a_config_with_three_problems_is_refused_with_three_sentences_in_the_specs_order() -> None:
    assert problems(**THREE_PROBLEMS) == THREE_SENTENCES
    message = " ".join(THREE_SENTENCES)
    config = {key: value for key, value in {**VALID, **THREE_PROBLEMS}.items() if value is not None}
    assert config_problem(config, SPEC, NOW) == message
    # What the manifest refuses the config with, before any stream is built: the same message.
    derived = prepare_config(config, SPEC, NOW)["_derived"]
    assert derived["problem"] == message
    with pytest.raises(AirbyteTracedException) as refused:
        RefuseConfigProblem().validate(derived["problem"])
    assert refused.value.message == message


def test_a_usable_config_has_no_problem() -> None:
    assert problems() == []
    assert config_problem(VALID, SPEC, NOW) is None
    assert prepare_config(VALID, SPEC, NOW)["_derived"]["problem"] is None


def test_missing_and_empty_are_told_apart() -> None:
    assert problems(api_key=None) == [THREE_SENTENCES[0]]
    empty = ["`api_key` is empty: paste a Klaviyo private API key with the segments:read scope (Settings > API keys)."]
    assert problems(api_key="") == empty
    assert problems(api_key=" \n") == empty  # blank is empty, not "has a space inside it"
    assert problems(api_key=" pk_test\n") == []  # a pasted key's newline is stripped, not refused


# Each JSON-schema error the spec can raise, in the connector's words, and what the code adds.
SENTENCES = [
    # required, type
    ({"api_key": 123}, "`api_key` must be text: a Klaviyo private API key with the segments:read scope (Settings > API keys)."),
    ({"segment_ids": "RpKvCF"}, '`segment_ids` must be a list of segment ids, such as ["RpKvCF"].'),
    ({"statistics": "total_members"}, '`statistics` must be a list of statistics, such as ["total_members", "members_added"].'),
    ({"lookback_window_days": "2"}, "`lookback_window_days` must be a whole number, 0 or more."),
    ({"lookback_window_days": 1.5}, "`lookback_window_days` must be a whole number, 0 or more."),
    ({"max_report_requests": True}, "`max_report_requests` must be a whole number, 1 or more."),
    (
        {"start_date": 20240101},
        "`start_date` must be text written YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, such as 2024-01-01 or 2024-01-01T06:00:00.",
    ),
    ({"interval": 1}, "`interval` must be one of hourly, daily, weekly, monthly."),  # not also "is 1; use one of"
    ({"_checking": "yes"}, "`_checking` must be true or false."),
    # enum
    ({"interval": "yearly"}, "`interval` is 'yearly'; use one of hourly, daily, weekly, monthly."),
    (
        {"values_timeframe": "last_2_days"},
        "`values_timeframe` is 'last_2_days'; use one of today, yesterday, this_week, last_week, this_month, last_month, "
        "this_year, last_year, last_7_days, last_30_days, last_90_days, last_365_days, last_3_months, last_12_months, custom.",
    ),
    (
        {"statistics": ["total_members", "bogus", "opens", 3]},
        "`statistics` has 'bogus', 'opens' and 3, which are not one of total_members, members_added, members_removed, "
        "net_members_changed.",
    ),
    # minItems, minLength, uniqueItems
    (
        {"segment_ids": []},
        "`segment_ids` is empty: list one or more segment ids, or remove the field "
        "(the default is every segment in the account).",
    ),
    (
        {"statistics": []},
        "`statistics` is empty: list one or more of total_members, members_added, members_removed, net_members_changed, "
        "or remove the field (the default is all of them).",
    ),
    ({"segment_ids": ["RpKvCF", " "]}, '`segment_ids` must contain only non-empty segment ids, such as "RpKvCF".'),
    ({"segment_ids": ["RpKvCF", 7]}, '`segment_ids` has 7: each of its segment ids must be text, such as "RpKvCF".'),
    ({"segment_ids": ["A", "B", "A", "B", "A"]}, "`segment_ids` lists 'A' and 'B' more than once: list each once."),
    # An unknown statistic listed twice is said once, as unknown.
    (
        {"statistics": ["bogus", "bogus"]},
        "`statistics` has 'bogus', which is not one of total_members, members_added, members_removed, net_members_changed.",
    ),
    # minimum
    (
        {"lookback_window_days": -1},
        "`lookback_window_days` is -1; use a whole number, 0 or more, or remove the field (the default is 1).",
    ),
    (
        {"max_report_requests": 0},
        "`max_report_requests` is 0; use a whole number, 1 or more, or remove the field (the default is no limit).",
    ),
    # pattern
    (
        {"start_date": "yesterday"},
        "`start_date` is 'yesterday': write it YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, such as 2024-01-01 or 2024-01-01T06:00:00.",
    ),
    ({"base_url": "a.klaviyo.com"}, "`base_url` is 'a.klaviyo.com': write it http(s)://host[:port][/path], such as https://a.klaviyo.com."),
    # What a JSON schema cannot say.
    ({"api_key": "pk_abc def"}, "`api_key` has a space, a line break or a control character inside it: paste the key alone."),
    (
        {"end_date": "2025-02-29"},
        "`end_date` is '2025-02-29', which is not a real date or time: write it YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, "
        "such as 2025-01-01.",
    ),
    (
        {"base_url": "http://127.0.0.1:port"},
        "`base_url` is 'http://127.0.0.1:port', whose host or port cannot be read: write it http(s)://host[:port][/path], "
        "such as https://a.klaviyo.com.",
    ),
    (
        {"start_date": "2024-05-01", "end_date": "2024-01-01"},
        "`end_date` (2024-01-01T00:00:00) must be later than `start_date` (2024-05-01T00:00:00).",
    ),
    (
        {"start_date": None, "end_date": "2023-01-01"},
        "`end_date` (2023-01-01T00:00:00) is not after 2023-06-01, the first day Klaviyo has segment data for: set a later one.",
    ),
    (
        {"start_date": "2025-03-02", "end_date": None},
        "`start_date` (2025-03-02T00:00:00) is in the future: Klaviyo has no segment data for it yet.",
    ),
]


@pytest.mark.parametrize(("fields", "sentence"), SENTENCES, ids=[str(fields) for fields, _ in SENTENCES])
def test_each_problem_is_one_sentence_naming_the_field_and_the_fix(fields: dict[str, Any], sentence: str) -> None:
    assert problems(**fields) == [sentence]


def test_integers_written_as_floats_are_whole_numbers_to_the_spec_and_to_the_connector() -> None:
    assert problems(lookback_window_days=2.0, max_report_requests=50.0) == []
    prepared = prepare_config({**VALID, "lookback_window_days": 2.0, "max_report_requests": 50.0}, SPEC, NOW)
    assert (prepared["lookback_window_days"], prepared["max_report_requests"]) == (2, 50)
    assert type(prepared["lookback_window_days"]) is int and type(prepared["max_report_requests"]) is int


def test_problems_of_every_field_are_said_together_each_in_its_own_sentence() -> None:
    broken = {
        "api_key": "",
        "start_date": "01/01/2024",
        "end_date": "2024-13-01",
        "segment_ids": ["A", "A"],
        "interval": "day",
        "statistics": ["opens"],
        "values_timeframe": "all_time",
        "lookback_window_days": -1,
        "max_report_requests": "10",
        "base_url": "ftp://a.klaviyo.com",
    }
    said = problems(**broken)
    named = [sentence.split("`")[1] for sentence in said]
    assert named == list(broken), said  # one sentence per field, in the spec's order (its `order`)
    assert all(sentence.endswith(".") and ". " not in sentence for sentence in said), said


# -- the spec is the one home of Klaviyo's facts ----------------------------------------------------


def test_the_specs_enums_are_klaviyos_published_ones() -> None:
    # Klaviyo's OpenAPI document lists them alphabetically; the spec in the order a person reads them.
    properties = SPEC["properties"]
    assert sorted(properties["statistics"]["items"]["enum"]) == sorted(STATISTICS)
    assert properties["statistics"]["default"] == properties["statistics"]["items"]["enum"]  # "#/..." to it: all
    assert sorted(properties["interval"]["enum"]) == sorted(INTERVALS)
    assert sorted(properties["values_timeframe"]["enum"]) == sorted([*TIMEFRAME_KEYS, "custom"])


@pytest.mark.parametrize("stream", ["segment_values", "segment_series"])
def test_each_report_schema_has_exactly_the_specs_statistics_as_nullable_integer_columns(stream: str) -> None:
    columns = MANIFEST["schemas"][stream]["properties"]
    nullable_integers = {name for name, column in columns.items() if sorted(column.get("type", [])) == ["integer", "null"]}
    assert nullable_integers == set(SPEC["properties"]["statistics"]["items"]["enum"])


def test_the_series_schema_and_klaviyos_caps_cover_the_specs_intervals() -> None:
    intervals = set(SPEC["properties"]["interval"]["enum"])
    assert set(MANIFEST["schemas"]["segment_series"]["properties"]["interval"]["enum"]) == intervals
    assert set(components.SERIES_WINDOW_STEP) == set(components.SERIES_ELAPSED_CAP) == intervals
    assert set(components.SERIES_WINDOW_CAP) <= intervals


def test_the_components_read_the_choices_and_defaults_from_the_spec_they_are_handed() -> None:
    spec = copy.deepcopy(SPEC)
    properties = spec["properties"]
    properties["statistics"]["items"]["enum"].append("members_lost")
    properties["statistics"]["default"] = ["members_lost"]
    properties["interval"]["enum"] = ["daily", "weekly"]
    properties["interval"]["default"] = "weekly"
    config = {**VALID, "statistics": ["members_lost"]}
    assert config_problems(config, spec, NOW) == []
    assert config_problems({**VALID, "interval": "hourly"}, spec, NOW) == ["`interval` is 'hourly'; use one of daily, weekly."]
    prepared = prepare_config(VALID, spec, NOW)
    assert (prepared["statistics"], prepared["interval"]) == (["members_lost"], "weekly")
    assert prepare_config(VALID, spec, NOW)["statistics"] is not properties["statistics"]["default"]  # a copy


def test_the_python_default_base_url_is_the_specs() -> None:
    # Kept for what runs without the spec (the segment pages' link check, the demo).
    assert SPEC["properties"]["base_url"]["default"] == components.DEFAULT_BASE_URL


# -- the account's timezone is asked for only when it can matter -------------------------------------


def prepare_sync(config: dict[str, Any], mocker: requests_mock.Mocker) -> dict[str, Any]:
    mocker.get(f"{components.DEFAULT_BASE_URL}/api/accounts", json=km.account("Asia/Tokyo"))
    parameters = {"connection_specification": SPEC, "account_requester": MANIFEST["definitions"]["account_requester"]}
    prepared = dict(config)
    PrepareSyncConfig(parameters=parameters).transform(prepared)
    return prepared


def test_a_config_without_base_url_asks_the_default_one_for_the_timezone() -> None:
    with requests_mock.Mocker() as mocker:
        prepared = prepare_sync(dict(VALID), mocker)
        asked = [request.url for request in mocker.request_history]
    assert asked == [f"{components.DEFAULT_BASE_URL}/api/accounts?fields%5Baccount%5D=timezone"]
    assert prepared["_derived"]["timezone"] == "Asia/Tokyo" and prepared["_derived"]["problem"] is None


def test_a_config_refused_whatever_the_time_asks_nothing() -> None:
    with requests_mock.Mocker() as mocker:
        prepared = prepare_sync({**VALID, "interval": "yearly"}, mocker)
        assert mocker.request_history == []
    assert prepared["_derived"]["problem"] == "`interval` is 'yearly'; use one of hourly, daily, weekly, monthly."
