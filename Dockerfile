# source-klaviyo-segments: the Python package on Airbyte's Python connector base image.
# The base image is pinned by digest and must be the same string as connectorBuildOptions.baseImage
# in metadata.yaml (refresh both from the registry when bumping).
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73
FROM ${BASE_IMAGE}

WORKDIR /airbyte/integration_code

COPY setup.py README.md main.py ./
COPY source_klaviyo_segments ./source_klaviyo_segments

# A regular (non-editable) install: manifest.yaml (streams, schemas and all) comes from package_data.
RUN pip install --no-cache-dir .

ENV AIRBYTE_ENTRYPOINT="python /airbyte/integration_code/main.py"
ENTRYPOINT ["python", "/airbyte/integration_code/main.py"]

LABEL io.airbyte.name=airbyte/source-klaviyo-segments
LABEL io.airbyte.version=0.5.0
