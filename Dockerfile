# The one image for api, worker and the migrate job: `journeys api|worker|migrate`.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    PATH=/app/.venv/bin:$PATH DATA_DIR=/var/lib/journeys
WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9

# Dependencies first (cached while only code changes), from the committed lock file.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY alembic.ini worker.py ./
COPY core ./core
COPY contracts ./contracts
COPY models ./models
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY conversations ./conversations
COPY migrations ./migrations
RUN uv sync --frozen --no-dev \
 && useradd --system --uid 10001 journeys \
 && mkdir -p /var/lib/journeys && chown journeys /var/lib/journeys
USER journeys
EXPOSE 8000
ENTRYPOINT ["journeys"]
CMD ["api"]
