"""The Linux service files as an installer copies them: the systemd units (systemd's own
checker where it is installed), the udev rules, the modules-load.d list, and the README's
install walk-through agreeing with the agent unit's directories."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
UNITS = ("kassa-agent.service", "kassa-backoffice.service")
UDEV = PACKAGING / "udev" / "70-kassa.rules"

KERNEL_CHAR_MAJORS = {"usb": 180, "usb_device": 189, "ttyACM": 166, "ttyUSB": 188, "ttyS": 4}
"""Names the kernel registers in /proc/devices for the devices the agent opens
(drivers/usb/core/file.c, core/devio.c, class/cdc-acm.c, serial/usb-serial.c, tty/serial/
8250): ``DeviceAllow=char-<name>`` must use these, not udev subsystem names."""


def unit_entries(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every assignment, repeated keys kept (configparser
    cannot: DeviceAllow= is given once per device group)."""
    section = ""
    out = []
    for raw in (PACKAGING / "systemd" / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key, value))
    return out


def service(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for section, key, value in unit_entries(name):
        if section == "Service":
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.skipif(
    not Path("/usr/bin/systemd-analyze").exists(), reason="systemd-analyze not installed"
)
@pytest.mark.parametrize("name", UNITS)
def test_systemd_accepts_each_unit(tmp_path, name):
    kassa = Path(sys.executable).with_name("kassa")
    text = (PACKAGING / "systemd" / name).read_text(encoding="utf-8")
    unit = tmp_path / name
    unit.write_text(text.replace("/opt/kassa/venv/bin/kassa", str(kassa)), encoding="utf-8")
    out = subprocess.run(
        ["/usr/bin/systemd-analyze", "verify", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode == 0 and problems == [], problems


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_writes_only_to_the_directories_systemd_makes_for_it(name):
    svc = service(name)
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert int(svc["WatchdogSec"][0]) >= 10
    assert svc["ProtectSystem"] == ["strict"]
    assert "StateDirectory" in svc and "ReadWritePaths" not in svc
    argv = shlex.split(svc["ExecStart"][0])
    assert "--quiet" not in argv  # stderr is the journal
    from kassa.cli import build_parser

    args = build_parser().parse_args(argv[1:])
    assert args.func.__name__ == "cmd_serve"
    # never a database password on the command line
    assert not any(a.startswith("--db") and "://" in a for a in argv)


def test_agent_unit_dirs_match_the_readme_and_the_example_config():
    svc = service("kassa-agent.service")
    assert svc["StateDirectory"] == ["kassa"] and svc["LogsDirectory"] == ["kassa"]
    assert svc["ConfigurationDirectory"] == ["kassa"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = readme[readme.index("### Installing on Linux (systemd)") :]
    install = install[: install.index("\n### ", 10)]
    paths = dict(re.findall(r"\b(path|token_file|dir) = \"([^\"]+)\"", install))
    assert paths["path"].startswith("/var/lib/kassa/")
    assert paths["token_file"].startswith("/var/lib/kassa/")  # not /etc/kassa: read-only
    assert paths["dir"] == "/var/log/kassa"
    assert "70-kassa.rules" in install and "modules-load.d/kassa.conf" in install


def test_device_allow_uses_kernel_names_and_their_drivers_load_at_boot():
    svc = service("kassa-agent.service")
    assert svc["DevicePolicy"] == ["closed"]
    allowed = [v.split()[0] for v in svc["DeviceAllow"]]
    assert all(a.startswith("char-") for a in allowed)
    names = {a.removeprefix("char-") for a in allowed}
    assert names <= set(KERNEL_CHAR_MAJORS), names - set(KERNEL_CHAR_MAJORS)
    # /dev/usb/lp* (major 180), CDC-ACM scanners and USB-serial adapters
    assert {"usb", "usb_device", "ttyACM", "ttyUSB"} <= names
    modules = {
        line.strip()
        for line in (PACKAGING / "modules-load.d" / "kassa.conf").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"usblp", "cdc_acm", "usbserial", "ch341", "pl2303", "ftdi_sio", "cp210x"} <= modules
    unit_after = next(v for s, k, v in unit_entries("kassa-agent.service") if k == "After")
    assert "systemd-modules-load.service" in unit_after.split()


def test_backoffice_unit_reads_the_database_from_the_environment_file():
    svc = service("kassa-backoffice.service")
    assert svc["EnvironmentFile"] == ["-/etc/kassa-backoffice/backoffice.env"]
    env = (PACKAGING / "backoffice" / "backoffice.env").read_text(encoding="utf-8")
    assert "KASSA_BACKOFFICE_DB=postgresql://" in env
    argv = shlex.split(svc["ExecStart"][0])
    assert argv[argv.index("--host") + 1] == "127.0.0.1"  # TLS is the proxy's
    proxy = (PACKAGING / "backoffice" / "nginx-kassa-backoffice.conf").read_text("utf-8")
    assert "proxy_pass http://127.0.0.1:8780;" in proxy and "listen 443 ssl;" in proxy


# ---------------------------------------------------------------------- udev
def udev_rules() -> list[list[tuple[str, str, str]]]:
    """Each rule as (key, operator, value) triples."""
    part = re.compile(r'^([A-Z_]+(?:\{[A-Za-z_]+\})?)(==|!=|=|\+=)"([^"]*)"$')
    rules = []
    for line in UDEV.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        triples = []
        for piece in (p.strip() for p in line.split(", ")):
            m = part.match(piece)
            assert m, piece
            triples.append((m[1], m[2], m[3]))
        rules.append(triples)
    return rules


def test_udev_rules_run_before_modemmanager_and_never_open_devices_to_all():
    number = int(UDEV.name.split("-", 1)[0])
    assert number < 77  # 77-mm-*.rules read ID_MM_DEVICE_IGNORE
    rules = udev_rules()
    assert len(rules) >= 20
    for rule in rules:
        for key, _op, value in rule:
            if key == "MODE":
                assert value == "0660", rule  # group access, never world-writable
        if ("ENV{KASSA_SCANNER}", "=", "1") in rule or ("ENV{KASSA_SERIAL}", "=", "1") in rule:
            assert ("ENV{ID_MM_DEVICE_IGNORE}", "=", "1") in rule, rule


def test_udev_names_each_device_by_its_port_and_no_two_rules_share_a_fixed_name():
    fixed: dict[str, list[list[tuple[str, str, str]]]] = {}
    per_device = 0
    for rule in udev_rules():
        for key, op, value in rule:
            if key != "SYMLINK":
                continue
            assert op == "+="
            if "$env{ID_PATH_TAG}" in value:
                per_device += 1
            else:
                fixed.setdefault(value, []).append(rule)
    assert per_device >= 3  # scanners, serial adapters, printers
    # a fixed alias is given to one device only: lp0 for the printer
    assert list(fixed) == ["kassa-printer"]
    assert ("KERNEL", "==", "lp0") in fixed["kassa-printer"][0]
    assert len(fixed["kassa-printer"]) == 1


def test_every_usb_id_named_in_a_comment_has_a_rule():
    text = UDEV.read_text(encoding="utf-8")
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    vendors = set()
    pairs = set()
    for rule in udev_rules():
        d = {k: v for k, _, v in rule}
        if "ATTRS{idVendor}" in d:
            vendors.add(d["ATTRS{idVendor}"])
            if "ATTRS{idProduct}" in d:
                pairs.add((d["ATTRS{idVendor}"], d["ATTRS{idProduct}"]))
    named_pairs = set(re.findall(r"\b([0-9a-f]{4}):([0-9a-f]{4})\b", comments))
    assert ("0483", "5743") in named_pairs
    assert named_pairs <= pairs, named_pairs - pairs
    named_vendors = set(re.findall(r"\(([0-9a-f]{4})[,)]", comments))
    named_vendors |= set(re.findall(r"\(\w+ ([0-9a-f]{4})\)", comments))
    assert named_vendors <= vendors, named_vendors - vendors
