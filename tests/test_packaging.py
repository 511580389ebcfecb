"""The Action installs the package with a plain, non-editable `pip install`: the wheel must carry every
template and the published schema, and the installed CLI must find them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_ships_templates_and_schema(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT),
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "templates").iterdir():
        assert f"skillopt_action/templates/{template.name}" in names, template.name
    assert "skillopt_action/schema/skillopt.schema.json" in names
    for module in (ROOT / "skillopt_action").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names, f"{module.relative_to(ROOT)} is not in the wheel"
    assert any(n.endswith("entry_points.txt") for n in names)
