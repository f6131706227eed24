"""The bench's own tests: its minimum is the true one, and BENCHMARKS.md names what exists."""
