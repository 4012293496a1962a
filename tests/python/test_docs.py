"""The examples of docs/python.md run as written (each in a fresh
interpreter, with a unique heap name in place of the example's)."""
import os
import re
import secrets
import subprocess
import sys

import pytest

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "python.md")


def examples():
    with open(DOC) as f:
        text = f.read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return [b for b in blocks if "import" in b and "sharena" in b]


@pytest.mark.parametrize("code", examples(), ids=lambda c: c.splitlines()[0][:40])
def test_example_runs(code, tmp_path):
    code = code.replace('"jobs"', repr("shr_pytest_doc_" + secrets.token_hex(4)))
    path = tmp_path / "example.py"
    path.write_text(code)
    r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_there_are_examples():
    assert len(examples()) >= 3
