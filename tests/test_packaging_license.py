"""The package declares its licence as an SPDX expression (PEP 639): setuptools builds it
without the deprecation warning the old ``license = {text = ...}`` table gives, and the
wheel's metadata carries ``License-Expression``."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from test_packaging import PACKAGES, ROOT, _tracked


def test_the_licence_is_an_spdx_string_and_needs_setuptools_77():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_building_the_wheel_warns_about_nothing_licence_related(tmp_path: Path):
    src = tmp_path / "src"
    for rel in _tracked(*PACKAGES, "pyproject.toml", "README.md"):
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    out = tmp_path / "dist"
    out.mkdir()
    code = "import sys; from setuptools import build_meta as b; b.build_wheel(sys.argv[1])"
    run = subprocess.run(
        [sys.executable, "-W", "default", "-c", code, str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "license" not in run.stderr.lower(), run.stderr[-3000:]
    (wheel,) = out.glob("kassa-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    assert "License-Expression: Apache-2.0" in text
