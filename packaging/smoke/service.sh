#!/usr/bin/env bash
# The Linux service as the README installs it, without a container and without a running
# systemd: `systemd-analyze verify` on both units, then the agent started as an
# unprivileged system user with the README's directories and file modes (a config dir it
# cannot write, a state dir and a log dir it owns): refused with a clear config_error while
# the token is configured in the config dir, then serving with it in the state dir, saying
# READY=1 on a notify socket, and stopping cleanly on SIGTERM. Needs root (useradd,
# setpriv). Usage: service.sh [VENV]   VENV: a venv with kassa installed and readable by
# any user (default: one is made here from python3 with the tree installed, no extras).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
user=kassa-smoke
work=$(mktemp -d "${TMPDIR:-/tmp}/kassa-service.XXXXXX")
chmod 0755 "$work"
made_user=
cleanup() {
    rm -rf "$work"
    if [ -n "$made_user" ]; then userdel "$user" 2>/dev/null || true; fi
}
trap cleanup EXIT
fail() { echo "service: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (useradd, setpriv)"

if [ -n "${1:-}" ]; then
    venv=$1
else
    mkdir "$work/src"
    (cd "$root" && git ls-files -z --cached --others --exclude-standard -- \
        agent sync drivers tui kassa packaging pyproject.toml README.md MANIFEST.in \
        | xargs -0 cp --parents -t "$work/src" 2>/dev/null)
    python3 -m venv "$work/venv"
    "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work/src" \
        >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; exit 1; }
    venv=$work/venv
fi
kassa=$venv/bin/kassa
py=$venv/bin/python
[ -x "$kassa" ] || fail "no kassa in $venv"

# 1. systemd's checker on the units as installed (the venv's kassa for /opt/kassa/venv).
if command -v systemd-analyze >/dev/null; then
    for unit in kassa-agent.service kassa-backoffice.service; do
        sed "s#/opt/kassa/venv/bin/kassa#$kassa#g" "$root/packaging/systemd/$unit" >"$work/$unit"
        out=$(systemd-analyze verify "$work/$unit" 2>&1) || fail "$unit: $out"
        [ -z "$out" ] || fail "$unit: $out"
    done
    echo "service: units verified"
else
    echo "service: systemd-analyze not installed, units not verified" >&2
fi

# 2. The service user and the README's layout.
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir "$work/var/lib/kassa" \
        --shell /usr/sbin/nologin "$user"
    made_user=1
fi
install -d -m 0755 "$work/etc" "$work/var" "$work/var/lib" "$work/var/log"
install -d -o "$user" -g "$user" -m 0700 "$work/var/lib/kassa"
install -d -o "$user" -g "$user" -m 0750 "$work/var/log/kassa"
install -d -o root -g "$user" -m 0750 "$work/etc/kassa"
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
config() {  # config TOKEN_FILE
    printf '[store]\npath = "%s"\n[api]\nport = %s\ntoken_file = "%s"\n[log]\ndir = "%s"\n' \
        "$work/var/lib/kassa/till.db" "$port" "$1" "$work/var/log/kassa" >"$work/kassa.toml"
    install -m 0640 -o root -g "$user" "$work/kassa.toml" "$work/etc/kassa/kassa.toml"
}
as_user() { setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- "$@"; }
cfg=$work/etc/kassa/kassa.toml

as_user "$kassa" init --demo --members 20 --store "$work/var/lib/kassa/till.db" >/dev/null

# 3. The token configured in the read-only config dir: a config_error naming the key, exit 2.
config "$work/etc/kassa/api-token"
set +e
refused=$(as_user "$kassa" agent serve --config "$cfg" 2>/dev/null)
code=$?
set -e
[ "$code" = 2 ] || fail "token in the config dir: exit $code, expected 2"
echo "$refused" | grep -q '"key": "api.token_file"' || fail "no config_error naming api.token_file"
doctor=$(as_user "$kassa" doctor --json --config "$cfg" || true)
echo "$doctor" | grep -q 'token directory .* is not writable' || fail "doctor did not flag the token dir"
echo "service: token in the config dir refused clearly (exit 2), doctor names the directory"

# 4. The token in the state dir: serves, READY=1, private files, clean stop.
config "$work/var/lib/kassa/api-token"
as_user "$kassa" doctor --json --config "$cfg" | grep -q 'is not writable' \
    && fail "doctor reports an unwritable directory in the README layout"
KASSA_PY=$py KASSA=$kassa CFG=$cfg WORK=$work USER_NAME=$user PORT=$port "$py" - <<'EOF'
import os, signal, socket, subprocess, sys, urllib.request
work, port = os.environ["WORK"], int(os.environ["PORT"])
sock_path = os.path.join(work, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sock_path)
os.chmod(sock_path, 0o666)  # the service user sends to it
sock.settimeout(60)
proc = subprocess.Popen(
    ["setpriv", f"--reuid={os.environ['USER_NAME']}", f"--regid={os.environ['USER_NAME']}",
     "--init-groups", "--", os.environ["KASSA"], "agent", "serve", "--quiet",
     "--config", os.environ["CFG"]],
    env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": sock_path},
    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
try:
    try:
        msg = sock.recv(4096).decode()
    except TimeoutError:
        proc.kill()
        sys.exit(f"service: no READY=1 within 60 s; the agent said: {proc.communicate()[1]}")
    assert msg.startswith("READY=1"), msg
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/live", timeout=10).status == 200
    token_file = os.path.join(work, "var/lib/kassa/api-token")
    st = os.stat(token_file)
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    import pwd
    assert st.st_uid == pwd.getpwnam(os.environ["USER_NAME"]).pw_uid != 0, st.st_uid
    for name in ("till.db", "till.db.lock"):
        mode = os.stat(os.path.join(work, "var/lib/kassa", name)).st_mode & 0o777
        assert mode == 0o600, (name, oct(mode))
    token = open(token_file, encoding="utf-8").read().strip()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/status",
                                 headers={"Authorization": f"Bearer {token}"})
    assert urllib.request.urlopen(req, timeout=10).status == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
finally:
    if proc.poll() is None:
        proc.kill()
print("service: agent served as an unprivileged user (READY=1, files 0600), stopped cleanly")
EOF
