# One image: web by default (migrate, then serve), worker or migrate by command (compose.yaml).
#   docker build -t referflow .
#   docker run -p 8000:8000 -v referflow-data:/var/lib/referflow referflow     # SQLite + demo
#   docker compose up                                                           # PostgreSQL + Redis
# scripts/check-image proves what this file copies, installs and runs, without a Docker daemon:
# keep every step it can read (COPY, `pip` commands in RUN, CMD, HEALTHCHECK) in this shape.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    REFERFLOW_INSTANCE_DIR=/var/lib/referflow \
    PROMETHEUS_MULTIPROC_DIR=/tmp/referflow-metrics

WORKDIR /app
# The user the service runs as; its home is the instance dir (see USER below).
RUN groupadd --system --gid 10001 referflow \
    && useradd --system --uid 10001 --gid referflow --home-dir /var/lib/referflow --create-home referflow

# 1. Dependencies, pinned (requirements.lock, made by scripts/lock): this layer is rebuilt only
#    when the lock changes, not on every code change. It holds the build backend (hatchling) too,
#    so step 2 builds offline.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# 2. The code and everything pyproject.toml puts in the wheel (its readme, the package, and the
#    force-included schemas/, workflows/ and node_specs/).
COPY pyproject.toml README.md ./
COPY service ./service
COPY schemas ./schemas
COPY workflows ./workflows
COPY node_specs ./node_specs
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && pip check

# The embedded default keeps instance/referflow.db and secrets.json here (mount a volume);
# HOME is here too, so gunicorn's control socket has a writable place.
USER 10001:10001
ENV HOME=/var/lib/referflow
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["sh", "-c", "referflow migrate && exec referflow serve --host 0.0.0.0 --port \"$PORT\" --workers \"${WEB_CONCURRENCY:-4}\""]
