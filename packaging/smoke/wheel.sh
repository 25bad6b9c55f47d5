#!/usr/bin/env bash
# Smoke test of the wheel as a store installs it: build it from the tracked sources, install
# it WITHOUT extras into a clean venv, then from that venv run the cashier app under Pilot
# (packaging/smoke/tui_signin.py) and `kassa demo --script`. Prints the runtime install's
# size (site-packages, MB). Usage: wheel.sh BUILD_PYTHON [BASE_PYTHON]
#   BUILD_PYTHON  a python with setuptools>=77 (the dev venv): builds without isolation
#   BASE_PYTHON   the interpreter the clean venv is made from (default python3)
set -euo pipefail
build_py=${1:?usage: wheel.sh BUILD_PYTHON [BASE_PYTHON]}
base_py=${2:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kassa-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A copy of the work tree's files (tracked and new, not ignored), so the build leaves
# nothing (build/, egg-info) in the tree.
mkdir "$work/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard -- \
    agent sync drivers tui kassa pyproject.toml README.md \
    | xargs -0 cp --parents -t "$work/src")
"$build_py" -m pip wheel --no-deps --no-build-isolation -w "$work/dist" "$work/src" \
    >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheel=$(ls "$work"/dist/kassa-*.whl)
echo "smoke: built $(basename "$wheel")"

"$base_py" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" 2>&1 \
    | grep -v "^WARNING: Location" || true
"$work/venv/bin/python" -c "import kassa" # the install above must have worked
site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
for absent in psycopg escpos; do
    if "$work/venv/bin/python" -c "import $absent" 2>/dev/null; then
        echo "smoke: $absent is installed on a till (it must be an extra)" >&2
        exit 1
    fi
done
echo "smoke: runtime install $(du -sm "$site" | cut -f1) MB in site-packages" \
    "($(du -smc "$site"/pip "$site"/setuptools 2>/dev/null | tail -1 | cut -f1) MB of it" \
    "the venv's own pip/setuptools)"

mkdir "$work/run"
cd "$work/run"   # not the source tree: everything is imported from the venv
"$work/venv/bin/python" -I "$root/packaging/smoke/tui_signin.py" "$work/run"

out=$("$work/venv/bin/kassa" demo --script --members 300 2>"$work/demo.err") || {
    echo "smoke: kassa demo --script failed:" >&2
    cat "$work/demo.err" >&2
    exit 1
}
for step in "=== 1." "=== 3." "=== 7." "=== 9." "участников загружено"; do
    if ! grep -qF -- "$step" <<<"$out"; then
        echo "smoke: kassa demo --script printed no '$step':" >&2
        tail -20 <<<"$out" >&2
        exit 1
    fi
done
if grep -q "Traceback" "$work/demo.err"; then
    cat "$work/demo.err" >&2
    exit 1
fi
echo "smoke: kassa demo --script from the wheel: every step printed, exit 0"
