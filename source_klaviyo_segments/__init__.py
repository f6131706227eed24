"""Airbyte source for Klaviyo's segment growth reports."""

from .source import SourceKlaviyoSegments

__all__ = ["SourceKlaviyoSegments"]
