# Sluicegate: stateless, so scale it out as N replicas behind any HTTP load balancer.
# The builder turns the source into a wheel; the runtime installs only that wheel.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels . \
    && printf '%s[fast]\n' /tmp/wheels/sluicegate-*.whl > /tmp/wheels/requirements.txt

FROM python:3.11-slim AS runtime
# Policies: mount a directory of policy files over /etc/sluicegate/policies (the image
# ships the bundled default there); edits and ConfigMap updates are reloaded live.
# Writable space is needed only in /tmp (the workers' shared metrics files), so the
# image runs with a read-only root: docker run --read-only --tmpfs /tmp ...
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SLUICEGATE_HOST=0.0.0.0 SLUICEGATE_PORT=8080 \
    SLUICEGATE_POLICY=/etc/sluicegate/policies \
    SLUICEGATE_WORKERS=auto
COPY --from=builder /tmp/wheels /tmp/wheels
RUN pip install --no-cache-dir --disable-pip-version-check -r /tmp/wheels/requirements.txt \
    && rm -rf /tmp/wheels \
    && groupadd --system --gid 10001 sluicegate \
    && useradd --system --no-log-init --no-create-home --uid 10001 --gid 10001 sluicegate
COPY --from=builder /src/gateway/policies/default.yaml /etc/sluicegate/policies/default.yaml
WORKDIR /app
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"SLUICEGATE_PORT\"]}/healthz')"]
ENTRYPOINT ["sluicegate"]
# SLUICEGATE_WORKERS=auto: one worker per usable CPU, capped by the container's CPU limit
# (an environment default, so -e SLUICEGATE_WORKERS=4 overrides it). SIGTERM drains them.
CMD ["serve"]
