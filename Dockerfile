# The gateway's runtime image: the app, its host project and their dependencies, run as a
# non-root user. Tests, benchmarks, CI files and docs are not in it (.dockerignore, and only
# the three paths below are copied). Build once: docker compose build (image ws-gateway:local).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    # SQLite in the writable data directory when no DATABASE_URL is given (compose sets PostgreSQL).
    DATABASE_URL=sqlite:////app/var/db.sqlite3

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY manage.py ./
COPY hermes_site hermes_site
COPY ws_gateway ws_gateway

# The code stays root-owned (read-only to the server); the server writes only to /app/var (SQLite)
# and /workspace, the working directory its agents' commands start in.
RUN useradd --system --uid 10001 --user-group --home-dir /workspace --shell /usr/sbin/nologin gateway \
    && mkdir -p /app/var /workspace \
    && chown gateway:gateway /app/var /workspace
USER gateway
WORKDIR /workspace

EXPOSE 8000
# Directly exposed: no proxy headers. Behind nginx (docker-compose.yml) add --proxy-headers.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "hermes_site.asgi:application"]
