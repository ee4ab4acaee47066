# The one image for api, worker and the migrate job: `journeys api|worker|migrate`.
FROM python:3.11-slim AS base
# Byte-compiled code: the workflow sandbox re-imports a journey's modules for every workflow
# instance it builds; without .pyc files each of those imports compiles the source again
# (the image runs as a user who cannot write them, so they are made at build time below).
ENV PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    PATH=/app/.venv/bin:$PATH DATA_DIR=/var/lib/journeys
WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9

# Dependencies first (cached while only code changes), from the committed lock file.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY alembic.ini worker.py cli.py ./
COPY core ./core
COPY contracts ./contracts
COPY providers ./providers
COPY models ./models
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY conversations ./conversations
COPY migrations ./migrations
RUN uv sync --frozen --no-dev \
 && python -m compileall -q -j 0 -x '/\.venv/' /app \
 && useradd --system --uid 10001 journeys \
 && mkdir -p /var/lib/journeys && chown journeys /var/lib/journeys
USER journeys
EXPOSE 8000 9464
ENTRYPOINT ["journeys"]
CMD ["api"]
