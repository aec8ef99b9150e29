#!/usr/bin/env bash
# Runs the checks and the tests; sets up the Python environment on a fresh machine.
#   ./run_tests.sh                   everything CI runs: the pre-commit hooks (ruff,
#                                    ruff-format, mypy, YAML) on every file, then every test
#                                    but the fault matrix and the soak test
#   ./run_tests.sh tests/unit        only the unit tests: seconds, with no daprd on the machine
#   ./run_tests.sh -k redrive        tests whose name matches
# Arguments go to pytest, and the hooks then check only the files changed since the last
# commit (none on a fresh clone), so that a part of the suite starts at once. The programs
# the selected tests run (daprd, Redis, PostgreSQL, helm) are found, installed or built before
# the first of them starts (tests/conftest.py); the unit tests run none.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh

# Tracked files changed since the last commit, and new files git does not ignore.
changed_files() {
  git rev-parse --verify --quiet HEAD >/dev/null 2>&1 || return 0
  { git diff --name-only --relative --diff-filter=d HEAD; git ls-files --others --exclude-standard; } | sort -u
}

if [ $# -eq 0 ]; then
  say "Checking the code (pre-commit: ruff, ruff-format, mypy, YAML)"
  .venv/bin/pre-commit run --all-files --show-diff-on-failure
else
  changed=()
  while IFS= read -r file; do changed+=("$file"); done < <(changed_files)
  if [ ${#changed[@]} -gt 0 ]; then
    say "Checking the ${#changed[@]} files changed since the last commit (pre-commit)"
    .venv/bin/pre-commit run --show-diff-on-failure --files "${changed[@]}"
  fi
fi

say "Running the tests"
.venv/bin/python -m pytest "$@"
