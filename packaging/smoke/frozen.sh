#!/usr/bin/env bash
# Build the frozen Linux one-file kassa (packaging/windows/kassa.spec, KASSA_FROZEN_ONEFILE=1)
# in a venv of its own that has the project and PyInstaller but NO dev extras, then run it:
# a test slip with a QR to a capture printer, a usb:// printer (no device here: a printer
# error, never a missing module), `kassa doctor`, the scripted demo and the cashier app's
# sign-in screen on a real terminal. Slow (a few minutes): `make frozen`, not `make test`.
# Usage: frozen.sh [BASE_PYTHON]; KASSA_FROZEN_OUT=path keeps the binary.
set -euo pipefail
base_py=${1:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kassa-frozen.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "frozen: $*" >&2; exit 1; }

mkdir "$work/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard -- \
    agent sync drivers tui kassa packaging pyproject.toml README.md \
    | xargs -0 cp --parents -t "$work/src")
"$base_py" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check "$work/src" \
    pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9 >"$work/pip.log" 2>&1 \
    || { cat "$work/pip.log" >&2; exit 1; }
for absent in pytest psycopg escpos PIL; do
    if "$py" -c "import $absent" 2>/dev/null; then fail "$absent is in the build venv"; fi
done
start=$(date +%s)
(cd "$work" && KASSA_FROZEN_ONEFILE=1 "$work/venv/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath "$work/dist" --workpath "$work/build" "$work/src/packaging/windows/kassa.spec") \
    >"$work/pyinstaller.log" 2>&1 || { tail -40 "$work/pyinstaller.log" >&2; exit 1; }
kassa="$work/dist/kassa"
echo "frozen: built $(du -m "$kassa" | cut -f1) MB one-file binary in $(( $(date +%s) - start )) s"

mkdir "$work/run" && cd "$work/run"   # nothing from the source tree or the venv on the path
want=$("$py" -c "import importlib.metadata as m; print(m.version('kassa'))")
got=$("$kassa" --version)
[ "$got" = "kassa $want" ] || fail "kassa --version says '$got', the build is $want"
echo "frozen: $got (the distribution metadata is bundled)"
export HOME="$work/run" XDG_CONFIG_HOME="$work/run/config" XDG_DATA_HOME="$work/run/data"
env -i HOME="$HOME" PATH=/usr/bin:/bin "$kassa" printer test --printer "capture://$work/run/slip.bin" \
    >out.txt 2>&1 || { cat out.txt >&2; fail "kassa printer test failed"; }
"$py" - "$work/run/slip.bin" <<'PY' || fail "the test slip has no raster QR or no CP866 text"
import sys
data = open(sys.argv[1], "rb").read()
assert data.startswith(b"\x1b@\x1bt"), data[:8]      # ESC @, ESC t <slot>
assert b"\x1dv0" in data, "no GS v 0 raster (the QR)"
assert "Программа лояльности".encode("cp866") in data, "no Russian text in CP866"
PY
echo "frozen: kassa printer test: a slip with a raster QR on the capture printer"

set +e
"$kassa" printer test --printer "usb://0x04b8:0x0202" >usb.txt 2>&1
usb=$?
set -e
if grep -q "No module named\|Traceback" usb.txt; then cat usb.txt >&2; fail "usb:// import failure"; fi
[ "$usb" -ne 0 ] || fail "usb:// with no device reported success"
grep -q "usb_library_missing\|not_found\|permission\|USB\|usb" usb.txt \
    || { cat usb.txt >&2; fail "usb:// error does not say what is wrong"; }
echo "frozen: usb:// without a device: a printer error (exit $usb), no missing module"

"$kassa" init --store "$work/run/till.db" >/dev/null
"$kassa" cashier add --store "$work/run/till.db" --id smoke --name "Смоук" --pin 1234 >/dev/null
set +e
"$kassa" doctor --store "$work/run/till.db" --json >doctor.json 2>doctor.err
doctor=$?
set -e
[ "$doctor" -le 1 ] || { cat doctor.json doctor.err >&2; fail "kassa doctor found errors"; }
"$py" -c "import json,sys; d=json.load(open('doctor.json')); assert d['findings'], d" \
    || fail "kassa doctor printed no findings"
echo "frozen: kassa doctor: exit $doctor (0 fine, 1 warnings: a till never enrolled)"

"$kassa" demo --script --members 300 >demo.txt 2>demo.err \
    || { cat demo.err >&2; fail "kassa demo --script failed"; }
grep -qF "=== 9." demo.txt || { tail demo.txt >&2; fail "kassa demo --script stopped early"; }
echo "frozen: kassa demo --script: every step, exit 0"

"$py" "$root/packaging/smoke/pty_screen.py" "Вход кассира" 60 \
    "$kassa" tui --store "$work/run/till.db" --printer none \
    || fail "the cashier app did not show its sign-in screen"
echo "frozen: kassa tui: the sign-in screen on an 80x24 terminal (kassa.tcss bundled)"
if [ -n "${KASSA_FROZEN_OUT:-}" ]; then cp "$kassa" "$KASSA_FROZEN_OUT"; fi
