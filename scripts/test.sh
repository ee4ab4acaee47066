#!/usr/bin/env bash
# `make test`: install, start a throwaway PostgreSQL on loopback, run every test against
# real Temporal (the dev server binary in .tools/bin) and real PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
# Write .pyc files even where the environment says not to: the worker's sandbox re-imports
# workflow modules per instance, and without bytecode each import compiles the source again.
unset PYTHONDONTWRITEBYTECODE
scripts/bootstrap.sh
# The patient pages are tested in a real headless browser: Debian's chromium + its driver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "==> installing chromium and chromium-driver from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq chromium chromium-driver >&2
fi
TEST_DATABASE_URL=$(scripts/pg-test.sh start)
export TEST_DATABASE_URL
trap 'scripts/pg-test.sh stop' EXIT
# Our own temporary root: pytest's default (/tmp/pytest-of-$USER) is shared by every session
# of the user and rotated, so a second checkout's run could delete this run's session files.
BASETEMP=()
case " $* " in *" --basetemp"*) ;; *) BASETEMP=(--basetemp="$PWD/.data/pytest-tmp") ;; esac
set +e
.venv/bin/pytest "${BASETEMP[@]}" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
