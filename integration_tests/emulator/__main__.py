"""CLI: serve the emulator until SIGINT/SIGTERM.

python -m integration_tests.emulator --port 8765 --segments 250 --now 2025-03-01T12:00:00 \
    --klaviyo-limits --time-scale 60 --fail-rate 0.15 --drop-rate 0.05 --seed 7
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime
from types import FrameType
from typing import Sequence

from .config import MALFORMED_KINDS, EmulatorConfig, Faults
from .ratelimit import RateLimits
from .server import Emulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m integration_tests.emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--segments", type=int, default=25)
    parser.add_argument("--timezone", default="America/New_York")
    parser.add_argument("--api-key", default="pk_emulator_key")
    parser.add_argument("--no-scope-api-key", default="pk_emulator_noscope")
    parser.add_argument("--now", type=datetime.fromisoformat, default=None,
                        help="naive company-local wall time the data ends at (default: real clock)")
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7, help="data seed; also seeds the faults")
    parser.add_argument("--klaviyo-limits", action="store_true", help="enforce Klaviyo's report rate limits")
    parser.add_argument("--time-scale", type=float, default=1.0, help="divide rate-limit windows by this")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=0.0)
    parser.add_argument("--daily-exhausted", action="store_true")
    parser.add_argument("--echo-request-in-errors", action="store_true")
    parser.add_argument("--malformed", choices=MALFORMED_KINDS, default=None)
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    faults = Faults(fail_rate=args.fail_rate, drop_rate=args.drop_rate, slow_seconds=args.slow_seconds,
                    daily_exhausted=args.daily_exhausted, echo_request_in_errors=args.echo_request_in_errors,
                    malformed=args.malformed, seed=args.seed)
    limits = RateLimits.klaviyo(args.time_scale) if args.klaviyo_limits else None
    return EmulatorConfig(segments=args.segments, timezone=args.timezone, api_key=args.api_key,
                          no_scope_api_key=args.no_scope_api_key, now=args.now, limits=limits, faults=faults,
                          seed=args.seed, page_size=args.page_size, port=args.port, host=args.host)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    emulator = Emulator(config_from_args(args)).start()
    print(f"emulator listening on {emulator.base_url} (api key: {args.api_key})", flush=True)
    try:
        # Short waits so the main thread gets to run the signal handlers promptly.
        while not stop.wait(0.2):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
