"""The agent's TOML config: typed, documented, unknown keys refused naming file and key,
secrets masked, the token file private."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
from test_cli import run_cli

from kassa.config import (
    SECTIONS,
    Config,
    ConfigError,
    ensure_token,
    field_docs,
    load_config,
    parse_config,
    redacted,
)

EXAMPLE = Path(__file__).parent.parent / "packaging" / "kassa.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kassa.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_default_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("KASSA_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    cfg = load_config()
    assert cfg.source == "defaults" and cfg.api.host == "127.0.0.1" and cfg.api.port == 8781
    assert cfg.token_path() == tmp_path / "cfg" / "kassa" / "api-token"


def test_a_named_file_must_exist(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml" in str(e.value) and "not found" in str(e.value)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[printers]\nurl = ''\n", "printers", "unknown section"),
        ("[api]\nprot = 8000\n", "api.prot", "unknown key"),
        ("[api]\nport = '8000'\n", "api.port", "whole number"),
        ("[api]\nport = 8000.0\n", "api.port", "whole number"),
        ("[api]\nport = 70000\n", "api.port", "1-65535"),
        ("[sync]\nenabled = 1\n", "sync.enabled", "true or false"),
        ("[scanner]\nports = '/dev/ttyACM0'\n", "scanner.ports", "list of text"),
        ("[log]\nlevel = 'LOUD'\n", "log.level", "one of"),
        ("[api]\nhost = '0.0.0.0'\n", "api.host", "allow_remote"),
        ("[api]\ntoken = 'short'\n", "api.token", "16 characters"),
        ("api = 5\n", "api", "section"),
    ],
)
def test_bad_files_are_refused_naming_file_and_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.details["file"] == str(path) and e.value.details["key"] == key
    assert str(path) in str(e.value) and key in str(e.value) and words in str(e.value)
    assert e.value.message_ru


def test_not_toml_is_refused(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "[api\nport = 1"))
    assert "not valid TOML" in str(e.value)


def test_remote_listen_needs_an_explicit_opt_in(tmp_path):
    cfg = load_config(write(tmp_path, "[api]\nhost = '0.0.0.0'\nallow_remote = true\n"))
    assert cfg.api.host == "0.0.0.0" and cfg.api.allow_remote


def test_every_field_is_documented_and_in_the_example():
    docs = field_docs()
    for name, cls in SECTIONS.items():
        for f in fields(cls):
            assert docs.get(f"{name}.{f.name}"), f"{name}.{f.name} has no docstring"
    example = EXAMPLE.read_text(encoding="utf-8")
    cfg = parse_config(tomllib.loads(example), str(EXAMPLE))  # the example is valid
    assert cfg.api.port == 8781
    section = ""
    mentioned = set()
    for line in example.splitlines():
        if m := re.match(r"^\[(\w+)\]", line):
            section = m.group(1)
        elif m := re.match(r"^#?\s*(\w+) = ", line):
            mentioned.add(f"{section}.{m.group(1)}")
    assert set(docs) <= mentioned, set(docs) - mentioned


def test_defaults_in_the_example_match_the_code():
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    defaults = Config()
    marked = {"store.path", "api.token_file"}  # "example" values in the file
    for name, values in example.items():
        for key, value in values.items():
            if f"{name}.{key}" not in marked:
                assert getattr(getattr(defaults, name), key) == value, f"{name}.{key}"


def test_show_masks_secrets_and_check_says_ok(tmp_path):
    secret = "s3cret-token-that-must-not-show"
    path = write(tmp_path, f"[api]\ntoken = '{secret}'\n[store]\npath = '{tmp_path}/t.db'\n")
    assert redacted(load_config(path))["api"]["token"] == "********"
    shown = run_cli(["config", "show", "--config", str(path)])
    assert shown.returncode == 0, shown.stderr
    assert secret not in shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["api"]["token"] == "********"
    ok = run_cli(["config", "check", "--config", str(path)])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"ok": True, "source": str(path)}
    bad = run_cli(["config", "check", "--config", str(write(tmp_path, "[api]\nprot = 1\n"))])
    assert bad.returncode == 2 and json.loads(bad.stdout)["details"]["key"] == "api.prot"


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_token_file_is_created_private_and_an_open_one_is_refused(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    token = ensure_token(cfg)
    path = tmp_path / "api-token"
    assert len(token) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert ensure_token(cfg) == token  # read back, not replaced
    path.chmod(0o640)
    with pytest.raises(ConfigError) as e:
        ensure_token(cfg)
    assert "chmod 600" in str(e.value)


PACKAGING = EXAMPLE.parent


def test_service_files_run_commands_that_exist():
    import configparser
    import shlex
    import xml.etree.ElementTree as ET

    from kassa.cli import build_parser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(PACKAGING / "systemd" / "kassa-agent.service", encoding="utf-8")
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["NoNewPrivileges"] == "true"
    assert service["ProtectSystem"] == "strict" and service["User"] == "kassa"
    for key in ("ExecStart", "ExecStartPre"):
        argv = shlex.split(service[key])
        args = build_parser().parse_args(argv[1:])
        assert args.func.__module__ == "kassa.cli.agent"
    xml = ET.parse(PACKAGING / "windows" / "kassa-agent.xml").getroot()
    args = build_parser().parse_args(shlex.split(xml.findtext("arguments") or ""))
    assert args.agent_command == "serve" and args.quiet
    compile((PACKAGING / "windows" / "kassa.spec").read_text(encoding="utf-8"), "spec", "exec")
    compile((PACKAGING / "windows" / "kassa_main.py").read_text(encoding="utf-8"), "m", "exec")


@pytest.mark.skipif(
    not Path("/usr/bin/systemd-analyze").exists(), reason="systemd-analyze not installed"
)
def test_systemd_accepts_the_unit(tmp_path):
    """systemd's own checker on the unit as installed (the venv's kassa in place of
    /opt/kassa/venv/bin/kassa): every key known and in its section, commands executable."""
    kassa = Path(sys.executable).with_name("kassa")
    text = (PACKAGING / "systemd" / "kassa-agent.service").read_text(encoding="utf-8")
    unit = tmp_path / "kassa-agent.service"
    unit.write_text(text.replace("/opt/kassa/venv/bin/kassa", str(kassa)), encoding="utf-8")
    out = subprocess.run(
        ["/usr/bin/systemd-analyze", "verify", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert problems == [], problems


@pytest.mark.parametrize(
    ("text", "ru"),
    [
        ("[api]\nport = '8000'\n", "ожидается целое число"),
        ("[sync]\nenabled = 1\n", "ожидается true или false"),
        ("[sync]\ninterval_s = 'x'\n", "ожидается число"),
        ("[printer]\nurl = 5\n", "ожидается текст"),
        ("[scanner]\nports = '/dev/ttyACM0'\n", "ожидается список строк"),
    ],
)
def test_type_errors_are_all_russian_in_russian(tmp_path, text, ru):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert ru in e.value.message_ru
    said = e.value.message_ru.split("ожидается", 1)[1]
    assert not re.search(r"[A-Za-z]", said.replace("true", "").replace("false", "")), said


def test_check_reports_every_problem_in_one_run(tmp_path):
    path = write(
        tmp_path,
        "[api]\nport = 'x'\nprot = 1\nhold_ttl_s = 5\n[sync]\nenabled = 1\n"
        "[log]\nlevel = 'LOUD'\n[printers]\nurl = ''\n",
    )
    expected = ["api.port", "api.prot", "sync.enabled", "printers", "api.hold_ttl_s", "log.level"]
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert [p["key"] for p in e.value.details["problems"]] == expected
    assert e.value.details["key"] == "api.port"  # the first, as for a single problem
    bad = run_cli(["config", "check", "--config", str(path)])
    assert bad.returncode == 2
    out = json.loads(bad.stdout)
    assert [p["key"] for p in out["details"]["problems"]] == expected
    for key in expected:  # every one named in both languages, and on stderr
        assert key in out["message_en"] and key in out["message_ru"] and key in bad.stderr


def test_show_masks_passwords_inside_urls(tmp_path):
    path = write(
        tmp_path,
        "[sync]\nurl = 'http://user:pa55word@bo:8780'\n[printer]\nurl = 'tcp://10.0.0.5:9100'\n",
    )
    assert redacted(load_config(path))["sync"]["url"] == "http://user:***@bo:8780"
    shown = run_cli(["config", "show", "--config", str(path)])
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert "pa55word" not in shown.stdout
    assert data["sync"]["url"] == "http://user:***@bo:8780"
    assert data["printer"]["url"] == "tcp://10.0.0.5:9100"  # no credentials: unchanged


def test_an_unknown_printer_profile_is_a_config_error_at_check_and_serve(tmp_path):
    """A preset name no profile has is refused when the file is read, naming the key and
    the presets: `kassa config check` says so, and `kassa agent serve` stops with the same
    error JSON (exit 2) before opening anything, rather than a traceback later."""
    from drivers.profiles import presets

    path = write(tmp_path, '[printer]\nprofile = "epson-tm-99"\n')
    for argv in (
        ["config", "check", "--config", str(path)],
        ["agent", "serve", "--config", str(path), "--store", str(tmp_path / "t.db"), "--quiet"],
    ):
        bad = run_cli(argv)
        assert bad.returncode == 2, (argv, bad.stdout, bad.stderr)
        err = json.loads(bad.stdout)
        assert err["error"] == "config_error" and err["details"]["key"] == "printer.profile"
        assert "epson-tm-99" in err["message_en"] and "epson-tm-99" in err["message_ru"]
        assert all(name in err["message_en"] for name in presets())
        assert "Traceback" not in bad.stderr
    # a preset and a profile file (read when the printer is built) still pass
    for profile in (presets()[0], str(tmp_path / "site.toml")):
        ok = run_cli(
            [
                "config",
                "check",
                "--config",
                str(write(tmp_path, f"[printer]\nprofile = {profile!r}\n")),
            ]
        )
        assert ok.returncode == 0, ok.stdout
