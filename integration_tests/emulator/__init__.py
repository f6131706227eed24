"""Test-only local emulator of Klaviyo's segment reporting API (pipeline: server.py; data: data.py).

    from integration_tests.emulator import Emulator, EmulatorConfig, RateLimits, Faults
    with Emulator(EmulatorConfig(segments=25, now=datetime(2025, 3, 1, 12))) as emu:
        requests.post(f"{emu.base_url}/api/segment-series-reports/", ...)

Choices made where Klaviyo's documentation is silent (the harsher reading where there is one):
- A report without a filter returns every segment of the account.
- A custom timeframe's offset is ignored and both ends are inclusive: buckets whose start wall time
  lies in [floor_bucket(start), end]; values aggregate hours starting in [floor_hour(start), end].
  Timeframe keys resolve to [start, end) (end exclusive) at `now`.
- Weeks start Monday; last_N_days = the N whole days before today; last_N_months = the N whole
  months before the current one.
- "No data before 2023-06-01" is enforced for custom timeframes; keys reaching earlier are answered
  (hours before then are 0). Interval caps (hourly 7 days, daily 60 days, weekly/monthly 52 weeks)
  apply to keys and custom timeframes alike, measured as end - start in elapsed time in the company
  zone (the harsher reading: a window holding a DST fall-back is an hour longer than its wall times).
- Series and values calls share one rate-limit quota (RateLimits.shared_report_quota); throttled calls
  consume none. Windows are fixed, aligned to the emulator's start on the injected clock.
- UTC offset changes are assumed to be whole hours (all US/EU zones; not Lord Howe).
"""

from .config import EmulatorConfig, Faults
from .ratelimit import RateLimits
from .server import CallRecord, Emulator

__all__ = ["CallRecord", "Emulator", "EmulatorConfig", "Faults", "RateLimits"]
