"""The emulators the tests share: one per test module (`emu`, read-only use) or one per test
(`fresh`, for tests that change its faults). Port 0 each, so modules in parallel workers never clash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from klaviyo_emulator import Emulator
from klaviyo_emulator.tests.support import make


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with make() as emulator:
        yield emulator


@pytest.fixture()
def fresh() -> Iterator[Emulator]:
    with make() as emulator:
        yield emulator
