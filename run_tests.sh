#!/usr/bin/env bash
# Runs every check and test: pre-commit hooks (ruff, mypy, YAML), then pytest: unit tests,
# integration tests on a real daprd with real Redis and PostgreSQL, and the local end-to-end
# test of ./run. Sets up everything it needs on a fresh machine. Arguments go to pytest:
#   ./run_tests.sh tests/unit        only the unit tests
#   ./run_tests.sh -k redrive        tests whose name matches
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh

say "Checking the code (pre-commit: ruff, ruff-format, mypy, YAML)"
.venv/bin/pre-commit run --all-files --show-diff-on-failure

say "Preparing daprd, Redis and PostgreSQL"
.venv/bin/python -m devstack prepare

say "Running the tests"
.venv/bin/python -m pytest "$@"
