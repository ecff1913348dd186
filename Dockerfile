# The gateway image; docker-compose.yml also runs the simulators (`.[sim]`) and the alert rules'
# push (`.[dashboards]`) from it.
#   docker build -t mh-gateway:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid, so ownership of the state volume stays the same across image rebuilds.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home \
        --home-dir /var/lib/mh-gateway --shell /usr/sbin/nologin gateway

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY simulators ./simulators
# dashboards: docker-compose.yml's alert-rules service runs `gateway dashboards push`.
COPY dashboards ./dashboards
RUN pip install --no-cache-dir ".[sim,dashboards]"

# Defaults baked in so the image runs on its own; docker-compose.yml mounts the repository's
# copies over them. A new named volume takes the owner of the directory it is mounted on, so
# chowning the state directory here is what lets the non-root user write to the volume.
COPY deploy/gateway.docker.toml /etc/mh-gateway/gateway.toml
COPY device_profiles /etc/mh-gateway/device_profiles
RUN mkdir -p /var/lib/mh-gateway && chown gateway:gateway /var/lib/mh-gateway

USER gateway

# /healthz, /readyz, /metrics (Prometheus) and /devices/stale; see docs/operations.md.
EXPOSE 9464

# Liveness: /healthz answers while the gateway's event loop runs. The slim image has no curl;
# urlopen fails on a refused connection, a timeout and any non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_HTTP__PORT', '9464') + '/healthz', timeout=4)" || exit 1

# SIGTERM (docker stop) makes the gateway stop intake, flush to InfluxDB, acknowledge and exit.
CMD ["gateway", "run", "--config", "/etc/mh-gateway/gateway.toml"]
