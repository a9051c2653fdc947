#!/usr/bin/env bash
# Creates bench/.venv with the Python tools flowhound is compared against.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet pandas pyarrow scikit-learn
"$here/.venv/bin/python" -c 'import pandas, pyarrow, sklearn; print("pandas", pandas.__version__, "pyarrow", pyarrow.__version__, "scikit-learn", sklearn.__version__)'
