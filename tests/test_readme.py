"""The README's Python example runs as written (against the test server via QUERYLEAF_URI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(server, dbname):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    env = {**os.environ, "QUERYLEAF_URI": server.uri, "QUERYLEAF_DB": dbname}
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "['customer', 'total', 'first_sku']"
    assert lines[1:3] == ["Ada 120.5 kb-1", "Grace 40 None"]
    assert lines[3] == "[{'n': 2, 'avg': 80.25}]"
    assert lines[4].startswith("db.orders.find(")
