from pathlib import Path

from setuptools import find_packages, setup

VERSION = "0.5.0"

setup(
    name="source-klaviyo-segments",
    version=VERSION,
    description="Airbyte source for Klaviyo segment growth reports (segment values and series).",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    # The range the tests run on (PyAirbyte needs < 3.13); the README and the Makefile state the same.
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["source_klaviyo_segments", "source_klaviyo_segments.*"]),
    package_data={"source_klaviyo_segments": ["manifest.yaml"]},
    install_requires=[
        "airbyte-cdk>=7.28.3,<8",
        "requests>=2.31",
        "jsonschema>=4.17",
        # ISO 8601 steps added as the CDK's cursor adds them (components._add_step); the CDK pins the version.
        "isodate>=0.6.1",
    ],
    extras_require={
        # PyAirbyte (Python < 3.13) and a chart, for `make demo` / `make sync`.
        # The emulator validates bodies with the official SDK's models, hence klaviyo-api.
        "demo": ["airbyte==0.71.3", "matplotlib>=3.8", "klaviyo-api==25.0.0"],
        "tests": [
            "airbyte==0.71.3",
            "matplotlib>=3.8",
            "pytest>=8",
            # `make test` spreads the tests over the machine's cores (two on CI).
            "pytest-xdist>=3.5",
            "requests-mock>=1.12",
            "hypothesis>=6.100",
            # Draws response bodies from Klaviyo's published schemas (unit_tests/test_generated_answers.py).
            "hypothesis-jsonschema>=0.23",
            "klaviyo-api==25.0.0",
            # jsonschema checks `format: date-time` (RFC 3339) only with it installed.
            "rfc3339-validator>=0.1.4",
            "ruff>=0.6",
            "mypy>=1.10",
            "types-requests",
            "types-PyYAML",
        ],
    },
    entry_points={"console_scripts": ["source-klaviyo-segments=source_klaviyo_segments.run:run"]},
)
