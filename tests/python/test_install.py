"""Installing, as a user would, offline with Debian's packages only:
pip from the source tree into a venv, and cmake --install with an RPATH to
libsharena."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import sharena

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = textwrap.dedent("""
    import pickle, sys, sharena
    sl = sharena.ShareableList(["installed", 1, b"x"])
    assert pickle.loads(pickle.dumps(sl))[0] == "installed"
    sl.shm.unlink()
    print(sharena.__file__)
    print(open("/proc/self/maps").read())
    """)


def test_pip_install_into_a_venv(tmp_path):
    src = tmp_path / "src"
    for d in ("python", "include", "common", "shm", "alloc", "gc", "list", "lib"):
        shutil.copytree(os.path.join(ROOT, d), src / d,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "--no-build-isolation", "--no-index",
                          str(src / "python")], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    env = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH: only what pip installed
    r = subprocess.run([str(venv / "bin" / "python"), "-c", SMOKE], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith(str(venv))
    pkg = os.path.dirname(r.stdout.splitlines()[0])
    assert os.path.exists(os.path.join(pkg, "__init__.pyi"))


def _build_dir():
    d = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(sharena.__file__))))
    return d if os.path.exists(os.path.join(d, "CMakeCache.txt")) else None


@pytest.mark.skipif(_build_dir() is None, reason="sharena is not imported from a CMake build tree")
def test_cmake_install_with_rpath(tmp_path):
    prefix = tmp_path / "prefix"
    r = subprocess.run(["cmake", "--install", _build_dir(), "--prefix", str(prefix)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    site = [os.path.join(dp) for dp, dn, fn in os.walk(prefix) if os.path.basename(dp) == "dist-packages"]
    assert len(site) == 1, site
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": site[0]}
    r = subprocess.run(["/usr/bin/python3", "-c", SMOKE], capture_output=True, text=True, timeout=120,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(site[0])
    libs = {ln.split()[-1] for ln in lines[1:] if "libsharena.so" in ln}
    assert libs and all(p.startswith(str(prefix)) for p in libs), libs
