# patient-journeys: the two commands are `make run` and `make test`.
.PHONY: run test install lint format typecheck bench bench-reports bench-imports clean help

help:            ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run:             ## install what is missing, then run Temporal (+UI), worker and API
	@scripts/run.sh

test:            ## install what is missing, start a throwaway PostgreSQL, run every test
	@scripts/test.sh

install:         ## only install: .venv from uv.lock, the Temporal CLI into .tools/bin
	@scripts/bootstrap.sh

lint:            ## ruff lint + format check
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:          ## ruff format + autofix
	@.venv/bin/ruff format . && .venv/bin/ruff check --fix .

typecheck:       ## mypy over the packages and modules listed in pyproject [tool.mypy]
	@.venv/bin/mypy

bench:           ## benchmarks: ours beside a baseline measured in the same run (ARGS=--large)
	@scripts/bootstrap.sh && env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m bench $(ARGS)

bench-imports:   ## MIS import of a 10,000-row visits file beside the raw SDK starting as many journeys (ARGS=--rows N)
	@scripts/bootstrap.sh && env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m bench.imports $(ARGS)
bench-reports:   ## management reports over 1M appointments in PostgreSQL (generated once)
	@scripts/bootstrap.sh && .venv/bin/python -m bench.reports

chaos:           ## kill -9 worker, API and Temporal under hundreds of journeys; prints the counts
	@scripts/bootstrap.sh && .venv/bin/python -m tests.chaos --journeys $${JOURNEYS:-300} --kills $${KILLS:-16}

clean:           ## remove local state (.data); keeps installed tools
	@scripts/pg-test.sh stop; rm -rf .data
