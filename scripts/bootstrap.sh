# Sourced by ./run and ./run_tests.sh: makes sure `.env` and the Python environment exist.
# The first run on a new machine installs uv and every Python package from uv.lock.

say() { printf '==> %s\n' "$*" >&2; }

if [ ! -f .env ]; then
  cp .env.example .env
  say "Created .env from .env.example"
fi

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
PYTHON=${PYTHON:-python3}
if ! python_ok "$PYTHON"; then
  say "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1 || echo none))."
  exit 1
fi

UV_VERSION=0.13.8
if ! "$PYTHON" -m uv --version >/dev/null 2>&1; then
  say "Installing uv ${UV_VERSION} (Python package manager)"
  # A Python whose packages the system manages (PEP 668) takes it in the user's site instead.
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}" 2>/dev/null ||
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --user --break-system-packages \
      "uv==${UV_VERSION}"
fi
# Use this machine's Python; uv must not download one.
export UV_PYTHON_DOWNLOADS=never UV_PYTHON="$PYTHON"
if ! "$PYTHON" -m uv sync --frozen --quiet; then
  say "Installing the Python packages failed (see above)."
  exit 1
fi
