"""Installing the package is quiet: its build prints no warning of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.contract.conftest import ROOT

# This machine's pip configuration names local package mirrors that lack some
# projects; pip warns about those whatever it builds. They are not the package's.
MACHINE_NOTICE = "WARNING: Location 'file://"


def test_building_the_package_prints_no_warning(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", "dist", str(source)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = [
        line
        for line in (built.stdout + built.stderr).splitlines()
        if line.strip() and not line.startswith(MACHINE_NOTICE)
    ]
    assert built.returncode == 0, "\n".join(output)
    assert output == []
    (wheel,) = (tmp_path / "dist").glob("claude_max_api_proxy-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    assert "License-Expression: MIT" in text
