# Shared by scripts/*: make a virtualenv in .venv with arqgraph installed (once), and enter it.
# Usage: source scripts/_env.sh [extra]   (extra "test" also installs the test dependencies)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
want=".[${1:-}]"
[ -z "${1:-}" ] && want="."
stamp=".venv/.installed-${1:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e "$want"
  touch "$stamp"
fi
