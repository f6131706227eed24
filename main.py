"""Entry point Airbyte's Python connector images run."""

from source_klaviyo_segments.run import run

if __name__ == "__main__":
    run()
