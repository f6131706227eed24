"""The source: the manifest, run by the CDK, with the config prepared and refused in one place."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Iterator, List, Mapping

from airbyte_cdk.models import (
    AirbyteCatalog,
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    FailureType,
    Status,
    SyncMode,
)
from airbyte_cdk.sources.declarative.models.declarative_component_schema import HttpRequester as HttpRequesterModel
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .components import ReportCallAllowance, ReportPacer
from .config import DERIVED, FAST_RETRIES, config_problem, prepare_config
from .windows import company_now, zone

# The full-refresh report stream, whose partitions (timeframes) are known before it starts.
VALUES_STREAM = "segment_values"
# The manifest's request for the account's timezone (GET /api/accounts).
ACCOUNT_REQUESTER = "account_requester"


# The easternmost UTC offset: before the account's timezone is known, "now" may be this far ahead of UTC.
EARLIEST_OFFSET = dt.timedelta(hours=14)


def refuse_unusable_config(config: Mapping[str, Any], timezone: str | None = None) -> None:
    """Raises ``config_problem``'s one sentence as a config error, if it has one, judged at the
    company's now when the account's ``timezone`` is known, else at the latest now any company
    may have (a start_date later today may be in the past east of UTC)."""
    def now() -> dt.datetime:
        return company_now(timezone) if timezone else company_now(None) + EARLIEST_OFFSET

    problem = config_problem(config, now)
    if problem:
        raise AirbyteTracedException(message=problem, internal_message=problem, failure_type=FailureType.config_error)


class SourceKlaviyoSegments(YamlDeclarativeSource):
    def __init__(
        self,
        catalog: ConfiguredAirbyteCatalog | None = None,
        config: Mapping[str, Any] | None = None,
        state: List[AirbyteStateMessage] | None = None,
        config_path: str | None = None,
    ) -> None:
        super().__init__(
            path_to_yaml="manifest.yaml",
            catalog=catalog,
            config=prepare_config(config) if config else config,
            state=state,
            config_path=config_path,
        )
        # The CDK's HTTPAPIBudget reads RateLimit-Reset as an epoch time (Klaviyo sends seconds)
        # and cannot space calls by the burst limit: every requester built from here on shares
        # this pacer instead.
        self._constructor._api_budget = ReportPacer()

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """Lists segments (never a report call, which would spend the 225-a-day quota): one page,
        or every page when ``segment_ids`` are configured, to tell which of them do not exist."""
        prepared = self._config or prepare_config(config)
        problem = config_problem(prepared)
        if problem:
            return AirbyteConnectionStatus(status=Status.FAILED, message=problem)
        wanted = prepared.get("segment_ids") or []
        # A check should answer in seconds, even when Klaviyo cannot be reached.
        self._config = {**prepared, FAST_RETRIES: True}
        try:
            found = self._list_segment_ids(first_only=not wanted)
        except AirbyteTracedException as error:
            if error.failure_type == FailureType.config_error:  # 401, 403: the message names the fix
                return AirbyteConnectionStatus(status=Status.FAILED, message=error.message or str(error))
            return self._unreachable(prepared, error.message or str(error))
        except Exception as error:
            return self._unreachable(prepared, type(error).__name__)
        finally:
            self._config = prepared
        self._config = {**prepared, FAST_RETRIES: True}
        try:
            self.account_timezone(logger)
        except AirbyteTracedException as error:
            return AirbyteConnectionStatus(status=Status.FAILED, message=error.message or str(error))
        except Exception as error:
            return self._unreachable(prepared, type(error).__name__)
        finally:
            self._config = prepared
        missing = [segment_id for segment_id in wanted if segment_id not in found]
        if missing:
            return AirbyteConnectionStatus(
                status=Status.FAILED,
                message=f"These segment ids are not in the Klaviyo account: {', '.join(missing)}. "
                "Fix or remove them in `segment_ids`.",
            )
        return AirbyteConnectionStatus(status=Status.SUCCEEDED)

    @staticmethod
    def _unreachable(config: Mapping[str, Any], reason: str) -> AirbyteConnectionStatus:
        return AirbyteConnectionStatus(
            status=Status.FAILED,
            message=f"Could not list segments at {config['base_url']} ({reason.rstrip('.')}): check `base_url` and the network.",
        )

    def _list_segment_ids(self, first_only: bool) -> set[str]:
        segments = next(stream for stream in self.streams(self._config) if stream.name == "segments")
        found: set[str] = set()
        for partition in segments.generate_partitions():
            for record in partition.read():
                found.add(str(record.data["id"]))
                if first_only:
                    return found
        return found

    def discover(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteCatalog:
        self._refuse_unusable_config(config)
        return super().discover(logger, config)

    def _refuse_unusable_config(self, config: Mapping[str, Any]) -> None:
        refuse_unusable_config(self._config or config)

    def account_timezone(self, logger: logging.Logger) -> str | None:
        """The account's IANA timezone from ``GET /api/accounts`` (the manifest's
        ``account_requester``, with its retries and error handling), or ``None`` when the key
        lacks ``accounts:read`` or Klaviyo names a zone this machine does not know."""
        definition = dict(self.resolved_manifest["definitions"][ACCOUNT_REQUESTER])
        requester = ModelToComponentFactory().create_component(HttpRequesterModel, definition, self._config, name="account")
        try:
            response = requester.send_request()
        except AirbyteTracedException as error:
            if error.failure_type == FailureType.config_error:  # 401: the key itself is refused
                raise
            # The timezone only refines the plan: an outage of this endpoint must not stop a sync.
            logger.warning("Could not read the account's timezone (%s): planning without it.", error.message or error)
            return None
        if response is None or response.status_code in (403, 404):
            logger.info(
                "The API key may not read the account's timezone (scope accounts:read): report windows keep a "
                "daylight-saving margin and timeframes are sent with +00:00 (Klaviyo reads them in the account's timezone)."
            )
            return None
        try:
            timezone = response.json()["data"][0]["attributes"]["timezone"]
        except (ValueError, LookupError, TypeError):
            timezone = None
        if not isinstance(timezone, str) or zone(timezone) is None:
            logger.warning("Klaviyo named no timezone this connector knows (%r): planning without it.", timezone)
            return None
        logger.info("The Klaviyo account's timezone is %s.", timezone)
        return timezone

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: List[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        self._refuse_unusable_config(config)
        # Windows, "now" and timeframe offsets depend on the account's timezone: planned again with
        # it, and judged again at the company's now (a start_date may be in its future).
        timezone = self.account_timezone(logger)
        refuse_unusable_config(self._config, timezone)
        self._config = prepare_config(self._config, timezone=timezone)
        self._plan_report_calls(catalog)
        yield from super().read(logger, config, catalog, state)

    def _plan_report_calls(self, catalog: ConfiguredAirbyteCatalog) -> None:
        """Tells this sync's report-call allowance which streams resume from their state if cut
        short (incremental ones), and keeps segment_values' calls for it, which cannot."""
        prepared = self._config or {}
        selected = {configured.stream.name: configured.sync_mode for configured in catalog.streams}
        whole_partitions: dict[str, int] = {}
        if VALUES_STREAM in selected:
            whole_partitions[VALUES_STREAM] = len(prepared.get(DERIVED, {}).get("values_timeframes", []))
        ReportCallAllowance.for_sync(prepared).plan(
            resumable={name for name, mode in selected.items() if mode == SyncMode.incremental},
            whole_partitions=whole_partitions,
        )
