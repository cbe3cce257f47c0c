# syntax=docker/dockerfile:1
# arqgraph: one image for the orchestrator, the workers and one-off `arqgraph run` producers.
#
#   docker build -t arqgraph .
#   docker run --rm arqgraph --help
#   docker run --rm arqgraph run examples.screening:graph --input '{"name": "Bob Lee"}'
#
# The graphs to serve are importable modules: the repo's examples/ are copied to /app (the
# working directory, also on PYTHONPATH). To serve your own graphs, build FROM this image and
# COPY your package into /app, or mount it there.

# ---- build stage: install the distribution and its dependencies into a virtualenv ----------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY orchestrator ./orchestrator
COPY workers ./workers
RUN /opt/venv/bin/pip install ".[serve]"

# ---- runtime stage: the virtualenv, the example graphs, a non-root user -------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 arqgraph \
 && useradd --system --uid 10001 --gid arqgraph --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin arqgraph
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY examples ./examples
USER arqgraph:arqgraph

ENTRYPOINT ["arqgraph"]
CMD ["worker", "examples.screening:graph"]
