#!/usr/bin/env bash
# Installs everything the project needs into project-local, git-ignored folders:
#   .tools/uv    a private venv holding the pinned uv
#   .venv        the project's virtual environment, from the committed uv.lock
#   .tools/bin   the Temporal CLI (dev server + Web UI), built once from Go modules
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
TEMPORAL_CLI_VERSION=v1.5.1
TOOLS=$PWD/.tools

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

find_python() {
  for c in python3.11 python3 python3.12 python3.13; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  echo "Python 3.11+ is required" >&2; return 1
}

# --- Python toolchain -------------------------------------------------------------
if [ ! -x "$TOOLS/uv/bin/uv" ] || [ "$("$TOOLS/uv/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  say "installing uv $UV_VERSION into .tools/uv"
  PY=$(find_python)
  "$PY" -m venv "$TOOLS/uv"
  "$TOOLS/uv/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
export UV_PROJECT_ENVIRONMENT=$PWD/.venv
if [ -z "${UV_PYTHON:-}" ]; then UV_PYTHON=$(find_python); export UV_PYTHON; fi
export UV_PYTHON_DOWNLOADS=never
"$TOOLS/uv/bin/uv" sync --frozen --quiet

# --- Temporal CLI -----------------------------------------------------------------
if [ ! -x "$TOOLS/bin/temporal" ]; then
  command -v go >/dev/null || { echo "Go is required to build the Temporal CLI" >&2; exit 1; }
  say "building the Temporal CLI $TEMPORAL_CLI_VERSION from Go modules (once; a few minutes)"
  mkdir -p "$TOOLS/bin"
  GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
fi

# --- Temporal time-skipping test server (tests only) --------------------------------
# The SDK would download a native build; we run the same server from Maven Central (Java).
if [ ! -x "$TOOLS/bin/temporal-test-server" ]; then
  command -v java >/dev/null && command -v mvn >/dev/null || { echo "Java and Maven are required for the time-skipping test server" >&2; exit 1; }
  say "fetching the Temporal test server (Maven Central, once)"
  rm -rf "$TOOLS/test-server"
  mvn -q -B -f scripts/test-server/pom.xml dependency:copy-dependencies -DoutputDirectory="$TOOLS/test-server/lib" >&2
  mkdir -p "$TOOLS/bin"
  printf '#!/bin/sh\n# Launched by WorkflowEnvironment.start_time_skipping(test_server_existing_path=...) as: <this> <port>\nexec java -cp "%s/test-server/lib/*" io.temporal.testserver.TestServer "$@"\n' "$TOOLS" > "$TOOLS/bin/temporal-test-server"
  chmod +x "$TOOLS/bin/temporal-test-server"
fi
