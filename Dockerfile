# Sluicegate: stateless, so scale it out as N replicas behind any HTTP load balancer.
# The builder turns the source into a wheel; the runtime installs only that wheel.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels . \
    && printf '%s[fast]\n' /tmp/wheels/sluicegate-*.whl > /tmp/wheels/requirements.txt

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SLUICEGATE_HOST=0.0.0.0 SLUICEGATE_PORT=8080
COPY --from=builder /tmp/wheels /tmp/wheels
RUN pip install --no-cache-dir --disable-pip-version-check -r /tmp/wheels/requirements.txt \
    && rm -rf /tmp/wheels \
    && groupadd --system --gid 10001 sluicegate \
    && useradd --system --no-log-init --no-create-home --uid 10001 --gid 10001 sluicegate
WORKDIR /app
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"SLUICEGATE_PORT\"]}/healthz')"]
ENTRYPOINT ["sluicegate"]
CMD ["serve"]
