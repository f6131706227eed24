"""Klaviyo's *published* contract for the segment reports, read from an excerpt of its OpenAPI
document (``klaviyo-segment-reports-2026-07-15.json`` beside this file), so that tests check what
the connector sends against what Klaviyo publishes, not against the connector's own constants.

Formats are checked: a ``format: date-time`` must be RFC 3339 (with an offset). ``jsonschema``
checks that format only when ``rfc3339-validator`` is installed (a test dependency);
``FORMATS_CHECKED`` proves it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

_DEFS: dict[str, Any] = json.loads((Path(__file__).with_name("klaviyo-segment-reports-2026-07-15.json")).read_text())["$defs"]
_REQUEST_MODELS = {"series": "SegmentSeriesRequestDTO", "values": "SegmentValuesRequestDTO"}


def _validator(model: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/$defs/{model}", "$defs": _DEFS}, format_checker=FormatChecker())


_VALIDATORS = {kind: _validator(model) for kind, model in _REQUEST_MODELS.items()}


def request_body_errors(kind: str, body: Any) -> list[str]:
    """Every way ``body`` breaks the published request schema of ``kind`` ("series" or "values")."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in _VALIDATORS[kind].iter_errors(body)]


_ATTRIBUTES = _DEFS["SegmentSeriesRequestDTOResourceObject"]["properties"]["attributes"]["properties"]
STATISTICS: tuple[str, ...] = tuple(_ATTRIBUTES["statistics"]["items"]["enum"])
INTERVALS: tuple[str, ...] = tuple(_ATTRIBUTES["interval"]["enum"])
TIMEFRAME_KEYS: tuple[str, ...] = tuple(_DEFS["Timeframe"]["properties"]["key"]["enum"])

# A naive date-time breaks the contract only if formats are really checked.
FORMATS_CHECKED = bool(
    request_body_errors(
        "values",
        {
            "data": {
                "type": "segment-values-report",
                "attributes": {
                    "statistics": ["total_members"],
                    "timeframe": {"start": "2024-01-01T00:00:00", "end": "2024-02-01T00:00:00"},
                },
            }
        },
    )
)
