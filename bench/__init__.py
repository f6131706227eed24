"""Benchmarks of source-klaviyo-segments against the Klaviyo emulator: ``python -m bench.run``."""
