"""The wheel ships the grammar inside the package and the parser loads it from there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_and_loads_the_grammar(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("queryleaf-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "queryleaf/grammar/queryleaf.lark" in names
        assert (
            z.read("queryleaf/grammar/queryleaf.lark")
            == (ROOT / "grammar" / "queryleaf.lark").read_bytes()
        )
        z.extractall(tmp_path / "site")
    site = str(tmp_path / "site")
    code = (
        "import queryleaf.sql.parser as p, importlib.resources as r;"
        "f = r.files('queryleaf') / 'grammar' / 'queryleaf.lark';"
        f"assert f.is_file() and str(f).startswith({site!r}), str(f);"
        "print(type(p.parse('SELECT 1')).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": ""},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "QueryStatement"
