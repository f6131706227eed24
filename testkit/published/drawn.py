"""Response bodies drawn from Klaviyo's *published* response schemas, with ``hypothesis-jsonschema``:
anything Klaviyo's OpenAPI document allows, not what the connector hopes for.

``hypothesis-jsonschema`` 0.23.1 (the latest) draws a JSON object with
``hypothesis.internal.conjecture.utils.many(...).more()``, which recent Hypothesis releases replaced
by ``with many(...) as elements: for _ in elements``. ``_ManyWithMore`` gives it the old face over
the new class, for its module alone (Hypothesis itself keeps using the new one). It goes away when
``hypothesis-jsonschema`` catches up; ``_compatible`` checks which face Hypothesis has.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import hypothesis_jsonschema._from_schema as _from_schema
from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as conjecture_utils
from hypothesis_jsonschema import from_schema

_HERE = Path(__file__).parent
REPORT_DEFS: dict[str, Any] = json.loads((_HERE / "klaviyo-segment-reports-2026-07-15.json").read_text())["$defs"]
SEGMENT_LIST: dict[str, Any] = json.loads((_HERE / "klaviyo-segment-list-2026-07-15.json").read_text())


class _ManyWithMore:
    """``many(...).more()`` / ``.reject()`` over the iterating ``many``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._many = conjecture_utils.many(*args, **kwargs)
        self._many.__enter__()
        self._elements = iter(self._many)

    def more(self) -> bool:
        if next(self._elements, StopIteration) is StopIteration:
            self._many.__exit__(None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


def _compatible() -> None:
    if not hasattr(conjecture_utils.many, "more"):
        _from_schema.cu = types.SimpleNamespace(**{**vars(conjecture_utils), "many": _ManyWithMore})  # type: ignore[assignment]


_compatible()


def report_schema(kind: str) -> dict[str, Any]:
    """The published response schema of a ``kind`` ("series" or "values") report, self-contained."""
    model = {"series": "PostSegmentSeriesResponseDTO", "values": "PostSegmentValuesResponseDTO"}[kind]
    return {"$ref": f"#/$defs/{model}", "$defs": REPORT_DEFS}


def published(schema: dict[str, Any], narrower: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Bodies valid by the published ``schema``; with ``narrower``, only those valid by both (so
    still bodies Klaviyo's contract allows, steered towards ones that answer a given call)."""
    if narrower is None:
        return from_schema(schema)
    return from_schema({"allOf": [schema, narrower], "$defs": schema["$defs"]})
