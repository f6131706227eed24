"""Facts about Klaviyo's segment reports that the connector is built on, each stated once.

The API revision and the 100-id batch size live in ``manifest.yaml`` (where the requests are
made); everything here is what the Python side needs to decide windows, defaults and refusals.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

STATISTICS: Final = ("total_members", "members_added", "members_removed", "net_members_changed")
INTERVALS: Final = ("hourly", "daily", "weekly", "monthly")
TIMEFRAME_KEYS: Final = (
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_year",
    "last_year",
    "last_7_days",
    "last_30_days",
    "last_90_days",
    "last_365_days",
    "last_3_months",
    "last_12_months",
)
CUSTOM_TIMEFRAME: Final = "custom"

# Klaviyo holds no segment report data before this day (company-local time).
FIRST_DATA_DAY: Final = dt.datetime(2023, 6, 1)

DEFAULT_BASE_URL: Final = "https://a.klaviyo.com"
DEFAULT_INTERVAL: Final = "daily"
DEFAULT_VALUES_TIMEFRAME: Final = "last_30_days"
DEFAULT_LOOKBACK_WINDOW_DAYS: Final = 1

# Longest timeframe one series call asks for, per interval, as an ISO 8601 duration that the
# CDK's cursor uses as its step. Klaviyo caps hourly at 7 days and daily at 60 days without saying
# whether in wall time or elapsed time; a window holding a DST fall-back is an hour longer in
# elapsed time, so hourly and daily keep an hour (a bucket-aligned day) of margin: a refused window
# would fail every sync. Monthly is documented as "at most 52 weeks"; 11 whole months is the most
# that always fits (12 months can be 366 days). Weekly is undocumented; 52 weeks is the figure
# reported by third parties and the same as monthly's cap (a 52-week window holds both DST changes).
SERIES_WINDOW_STEP: Final = {
    "hourly": "PT167H",
    "daily": "P59D",
    "weekly": "P52W",
    "monthly": "P11M",
}

# Klaviyo's own caps, used as the step when the account's timezone shows that no window of a
# sync holds a fall-back (windows.series_window_step). Weekly and monthly keep SERIES_WINDOW_STEP.
SERIES_WINDOW_CAP: Final = {"hourly": "P7D", "daily": "P60D"}

# A custom values timeframe may span at most one year, read harshly as 365 days (a leap year's
# 366 may be refused).
VALUES_WINDOW_YEARS: Final = 1
VALUES_WINDOW_DAYS: Final = 365

# Where the connector's own bucket arithmetic puts a week's start (Monday, ISO). Klaviyo does not
# document its week start: weekly windows start on the earlier of Sunday and Monday
# (windows.first_series_bucket), so either reading gives every bucket once.
WEEK_START_WEEKDAY: Final = 0

# A 429 asking for a longer wait than this is the daily quota, not the per-minute limit.
MAX_RATE_LIMIT_WAIT_SECONDS: Final = 600
