# A raw docstring: it is the --help description, whose example command continues with a backslash.
r"""CLI: serve the emulator until SIGINT/SIGTERM.

python -m klaviyo_emulator --port 8765 --segments 250 --now 2025-03-01T12:00:00 \
    --klaviyo-limits --time-scale 60 --burst-time-scale 1 --fail-rate 0.15 --drop-rate 0.05 --seed 7

--port 0 picks a free port; the startup line names it. A busy port is one sentence on stderr and
exit code 2. The reading flags (--require-offset, --cap-mode, --accounts-scope, --week-start,
--date-times-in, --created-spread, --before-creation, --edges, --future-timeframe) are
EmulatorConfig's modes.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from datetime import datetime
from types import FrameType
from typing import Sequence

from .config import (
    BEFORE_CREATION,
    CAP_MODES,
    DATE_TIMES_IN,
    EDGES,
    FUTURE_TIMEFRAMES,
    MALFORMED_KINDS,
    WEEK_STARTS,
    EmulatorConfig,
    Faults,
)
from .ratelimit import RateLimits
from .server import Emulator


def build_parser() -> argparse.ArgumentParser:
    # Every option says what it does (klaviyo_emulator/tests/test_cli.py checks that none lacks a help text).
    parser = argparse.ArgumentParser(prog="python -m klaviyo_emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    served = parser.add_argument_group("what it serves")
    served.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, reachable from this machine only)")
    served.add_argument("--port", type=int, default=0,
                        help="port to listen on; 0 picks a free one, which the first line names (default: %(default)s)")
    served.add_argument("--segments", type=int, default=25, help="how many segments the account holds (default: %(default)s)")
    served.add_argument("--timezone", default="America/New_York",
                        help="the account's timezone (IANA name): buckets, company-local wall times and "
                             "GET /api/accounts follow it (default: %(default)s)")
    served.add_argument("--api-key", default="pk_emulator_key",
                        help="the private API key it accepts, with every scope (default: %(default)s)")
    served.add_argument("--no-scope-api-key", default="pk_emulator_noscope",
                        help="a key it knows that lacks the scopes: 403 on every route (default: %(default)s)")
    served.add_argument("--now", type=datetime.fromisoformat, default=None,
                        help="the account's clock: the naive company-local wall time the data ends at, e.g. "
                             "2025-03-01T12:00:00, so every run sees the same numbers (default: the real clock)")
    served.add_argument("--page-size", type=int, default=10,
                        help="segments per page of GET /api/segments (default: %(default)s)")
    served.add_argument("--seed", type=int, default=7,
                        help="seeds the synthetic data and the fault draws: the same seed serves the same numbers "
                             "(default: %(default)s)")
    limits = parser.add_argument_group("rate limits")
    limits.add_argument("--klaviyo-limits", action="store_true",
                        help="enforce Klaviyo's published rate limits (reports: 1 a second, 2 a minute, 225 a day; "
                             "the listing and accounts their own), a 429 with Retry-After past them (default: none)")
    limits.add_argument("--time-scale", type=float, default=1.0,
                        help="with --klaviyo-limits: divide the steady and daily windows by this, e.g. 60 makes "
                             "a minute last a second (default: %(default)s)")
    limits.add_argument("--burst-time-scale", type=float, default=None,
                        help="divide the burst window by this instead of --time-scale (1 = real 1 s burst)")
    modes = parser.add_argument_group("modes: how it reads what Klaviyo's documentation leaves open")
    modes.add_argument("--require-offset", action=argparse.BooleanOptionalAction, default=True,
                       help="refuse custom timeframe start/end without a UTC offset (default: refuse)")
    modes.add_argument("--cap-mode", choices=CAP_MODES, default="elapsed",
                       help="measure interval caps in elapsed time or in wall time (default: elapsed)")
    modes.add_argument("--accounts-scope", action=argparse.BooleanOptionalAction, default=True,
                       help="the main key has accounts:read (--no-accounts-scope: GET /api/accounts is 403)")
    modes.add_argument("--week-start", choices=WEEK_STARTS, default="monday",
                       help="first day of weekly buckets and of the this_week / last_week keys (default: %(default)s)")
    modes.add_argument("--date-times-in", choices=DATE_TIMES_IN, default="company",
                       help="series date_times with the company offset or in UTC (default: company)")
    modes.add_argument("--created-spread", nargs=2, type=datetime.fromisoformat, default=None,
                       metavar=("FIRST", "LAST"),
                       help="spread segment creation times evenly over these naive company-local times")
    modes.add_argument("--before-creation", choices=BEFORE_CREATION, default="zero",
                       help="statistics of buckets ending before a segment's creation: 0 or null")
    modes.add_argument("--edges", choices=EDGES, default="inclusive",
                       help="which buckets a custom timeframe returns (default: inclusive)")
    modes.add_argument("--future-timeframe", choices=FUTURE_TIMEFRAMES, default="empty",
                       help="a custom timeframe starting after --now: empty answers it with no buckets (values: no "
                            "change), refuse with a 400 saying it is in the future (default: %(default)s)")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--fail-rate", type=float, default=0.0,
                        help="share of valid report calls answered 503, from 0 to 1 (default: %(default)s)")
    faults.add_argument("--drop-rate", type=float, default=0.0,
                        help="share of API requests whose connection is closed without an answer, from 0 to 1 "
                             "(default: %(default)s)")
    faults.add_argument("--slow-seconds", type=float, default=0.0,
                        help="real seconds to wait before answering each API request (default: %(default)s)")
    faults.add_argument("--daily-exhausted", action="store_true",
                        help="answer every report call 429, its Retry-After the time to the daily reset, as when "
                             "the day's 225 calls are spent")
    faults.add_argument("--echo-request-in-errors", action="store_true",
                        help="error bodies echo the request's headers, the API key included")
    faults.add_argument("--malformed", choices=MALFORMED_KINDS, default=None,
                        help="corrupt every successful report answer: missing_statistic drops the first requested "
                             "statistic, short_date_times the last date_time, not_json answers HTML, wrong_type "
                             'makes every value "n/a" (default: none)')
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    faults = Faults(fail_rate=args.fail_rate, drop_rate=args.drop_rate, slow_seconds=args.slow_seconds,
                    daily_exhausted=args.daily_exhausted, echo_request_in_errors=args.echo_request_in_errors,
                    malformed=args.malformed, seed=args.seed)
    limits = RateLimits.klaviyo(args.time_scale, args.burst_time_scale) if args.klaviyo_limits else None
    return EmulatorConfig(segments=args.segments, timezone=args.timezone, api_key=args.api_key,
                          no_scope_api_key=args.no_scope_api_key, now=args.now, limits=limits, faults=faults,
                          seed=args.seed, page_size=args.page_size, port=args.port, host=args.host,
                          require_offset=args.require_offset, cap_mode=args.cap_mode,
                          accounts_scope=args.accounts_scope, week_start=args.week_start,
                          date_times_in=args.date_times_in,
                          created_spread=tuple(args.created_spread) if args.created_spread else None,
                          before_creation=args.before_creation, edges=args.edges,
                          future_timeframe=args.future_timeframe)


def _bind_problem(exc: OSError, host: str, port: int) -> str:
    """One sentence saying why the emulator could not listen on host:port."""
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use: stop what holds it, "
                "or pass --port 0 for a free port.")
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges this process lacks: pass a port above 1023, or --port 0."
    return f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --host or --port."


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"invalid emulator settings: {exc}.", file=sys.stderr, flush=True)
        return 2
    try:
        emulator = Emulator(config).start()
    except OSError as exc:
        print(_bind_problem(exc, args.host, args.port), file=sys.stderr, flush=True)
        return 2
    print(f"emulator listening on {emulator.base_url} (port {emulator.port}, api key: {args.api_key})", flush=True)
    try:
        # Short waits so the main thread gets to run the signal handlers promptly.
        while not stop.wait(0.2):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
