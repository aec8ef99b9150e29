# One file, two images: `--target api` (the order API) and `--target placer` (the placer).
# Both run as a non-root user from a read-only root filesystem; Dapr runs beside them as the
# sidecar that the Dapr control plane injects.
#
# Build arguments:
#   BASE_IMAGE    an image with Python 3.11 as `python3` (default: the official slim image; the
#                 local cluster uses a Debian bookworm image made with debootstrap, cluster/base.py)
#   DEPENDENCIES  `index`: uv installs the locked dependencies from PyPI (default);
#                 `wheels`: pip installs them without network from the context's wheels/
#                 directory (requirements.txt exported from uv.lock with hashes, the wheels, and
#                 pip's own wheel), made by cluster/app_images.py before the build.
# Works with BuildKit and with the classic builder (no syntax directive to pull, no stages
# skipped by choice of argument).

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG DEPENDENCIES=index
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv
COPY pyproject.toml uv.lock ./
# wheels/ is optional: the wildcard matches nothing where it is absent.
COPY uv.lock wheels* /tmp/wheels/
# Either way the locked dependencies (no dev tools) end up in /srv/.venv, without pip or uv.
RUN if [ "$DEPENDENCIES" = wheels ]; then \
        python3 -m venv --without-pip /srv/.venv \
        && pip_wheel="$(echo /tmp/wheels/pip-*.whl)" \
        && /srv/.venv/bin/python "$pip_wheel/pip" install --no-index \
           --find-links /tmp/wheels --require-hashes -r /tmp/wheels/requirements.txt; \
    else \
        pip install --no-cache-dir uv==0.13.8 \
        && uv sync --frozen --no-dev --no-install-project; \
    fi \
    && rm -rf /tmp/wheels
COPY core/ core/
COPY app/ app/
COPY placer/ placer/
# The shared exchange stand-in runs from the placer's image: `python -m exchange`.
COPY exchange/ exchange/

FROM ${BASE_IMAGE} AS runtime
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin orders
WORKDIR /srv
COPY --from=build /srv /srv
ENV PATH=/srv/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    LOG_FORMAT=json \
    METRICS_HOST=0.0.0.0
USER 10001:10001

FROM runtime AS api
# One worker per pod: the HorizontalPodAutoscaler adds pods. API_WORKERS raises it.
# Metrics on 9464.
ENV API_HOST=0.0.0.0 API_PORT=8000 API_WORKERS=1
EXPOSE 8000 9464
HEALTHCHECK --interval=10s --timeout=2s CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
CMD ["python", "-m", "app"]

FROM runtime AS placer
# The exchange stand-in's ledger lives on a writable emptyDir mounted at /var/lib/placer.
# HTTP (8001) serves health; the sidecar delivers orders over gRPC to 8002; metrics on 9465.
ENV PLACER_HOST=0.0.0.0 PLACER_PORT=8001 PLACER_GRPC_PORT=8002 PLACER_METRICS_PORT=9465 EXCHANGE_LEDGER_PATH=/var/lib/placer/exchange-ledger.sqlite3
EXPOSE 8001 9465
HEALTHCHECK --interval=10s --timeout=2s CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8001/health/live', timeout=2)"]
CMD ["python", "-m", "placer"]
