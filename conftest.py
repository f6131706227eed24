"""Repository-wide pytest setup."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator

import pytest
from airbyte_cdk.utils.constants import ENV_REQUEST_CACHE_PATH
from hypothesis import settings

# `make test` gives the same verdict on the same commit: each property test draws the examples
# derived from its name. `make fuzz` (HYPOTHESIS_PROFILE=explore) draws fresh random ones, to hunt
# for new counterexamples; add each one it finds to a test's explicit cases.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The CDK's standard connector tests (integration_tests/test_standard_suite.py) need its fixtures.
pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]


@functools.cache
def docker_engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The standard suite's image tests build and run the Docker image: they run where a Docker
    engine answers (the CDK only skips them when the docker client is missing). Without one,
    unit_tests/test_packaging.py replays the Dockerfile's install and entry point instead."""
    if any(item.get_closest_marker("image_tests") for item in items) and not docker_engine_answers():
        skip = pytest.mark.skip(reason="no Docker engine answers `docker info` on this machine")
        for item in items:
            if item.get_closest_marker("image_tests"):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def no_request_cache_path_left_behind() -> Iterator[None]:
    """Each test starts, as a command started from a shell does, without REQUEST_CACHE_PATH.

    The CDK's entrypoint points it at each command's temporary folder in ``os.environ`` and never
    unsets it: after a command run in a test's own process, every command a later test starts there
    (they inherit the environment) would share one sqlite request cache, which `plan` then reads
    too; and requests_cache leaves the Authorization header out of its keys, so a segment listing
    cached under one API key would answer a command that has another.
    """
    os.environ.pop(ENV_REQUEST_CACHE_PATH, None)
    yield
    os.environ.pop(ENV_REQUEST_CACHE_PATH, None)
