# Sluicegate: stateless, so scale it out as N replicas behind any HTTP load balancer.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SLUICEGATE_HOST=0.0.0.0 SLUICEGATE_PORT=8080
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY policies ./policies
RUN pip install --no-cache-dir -e '.[fast]' \
    && useradd --system --uid 10001 sluicegate
USER sluicegate
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"SLUICEGATE_PORT\"]}/healthz')"
ENTRYPOINT ["sluicegate"]
CMD ["serve"]
