"""What the tests and the bench share, and neither owns: how to run the installed connector
command and write a catalog for it (``testkit.connector``), and Klaviyo's published contract
(``testkit.published``: the vendored response and request schemas, read as facts).

It is support code, not tests: pytest collects nothing here, and no fixture lives here (the
integration tests' fixtures stay in ``integration_tests/conftest.py``). The connector's wheel and
image never ship it (``setup.py`` packages ``source_klaviyo_segments`` only).

``testkit.published.drawn`` needs the ``tests`` extra (``hypothesis-jsonschema``); the rest needs
only what the connector installs, so the bench imports it under the ``demo`` extra too.
"""

from testkit.connector import catalog_entry, connector_command

__all__ = ["catalog_entry", "connector_command"]
