"""The installed connector command and the configured catalogs written for it: the integration
tests and the bench run the same command with the same catalogs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any


def connector_command() -> list[str]:
    """The installed ``source-klaviyo-segments`` console script: the one beside this interpreter
    (the venv's) first, else the first on PATH."""
    installed = Path(sys.executable).with_name("source-klaviyo-segments")
    if installed.exists():
        return [str(installed)]
    found = shutil.which("source-klaviyo-segments")
    assert found, "install the connector first: pip install -e '.[tests]'"
    return [found]


def catalog_entry(name: str, sync_mode: str) -> dict[str, Any]:
    """A configured catalog entry for ``name`` in ``sync_mode`` (incremental: cursor ``date_time``);
    the integration tests and the bench write their catalogs with it."""
    incremental = sync_mode == "incremental"
    return {
        "stream": {
            "name": name,
            "json_schema": {},
            "supported_sync_modes": ["full_refresh", "incremental"] if incremental else ["full_refresh"],
            "source_defined_cursor": incremental,
            "default_cursor_field": ["date_time"] if incremental else [],
        },
        "sync_mode": sync_mode,
        "destination_sync_mode": "append_dedup" if incremental else "overwrite",
        "cursor_field": ["date_time"] if incremental else [],
        "primary_key": [],
    }
