"""Build and install the sharena Python package from the source tree.

Offline, with Debian's packages only (python3-venv seeds pip and setuptools):

    /usr/bin/python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install --no-build-isolation --no-index ./python

The extension is compiled together with the library's C sources, so it
needs no libsharena installed. CMake (-DSHR_PYTHON=ON) is the other way to
build it, against libsharena.so.
"""
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)  # paths below are relative to python/
LAYERS = ["common", "shm", "alloc", "gc", "list"]  # bottom to top, as lib/CMakeLists.txt


def sources():
    out = ["sharena/_sharena.c"]
    for layer in LAYERS:
        d = os.path.join("..", layer)
        out += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".c"))
    out += [os.path.join("..", "lib", f) for f in ("heap.c", "solo.c")]
    return out


ext = Extension(
    "sharena._sharena",
    sources=sources(),
    include_dirs=[os.path.join("..", d) for d in ["include"] + LAYERS],
    define_macros=[("SHR_DEBUG", "0"), ("_GNU_SOURCE", None)],
    extra_compile_args=["-std=gnu11", "-O2", "-fvisibility=hidden", "-pthread"],
    extra_link_args=["-pthread"],
)

setup(
    name="sharena",
    version="0.1.0",
    description="Lists shared by processes: a drop-in multiprocessing.shared_memory.ShareableList",
    packages=["sharena"],
    package_data={"sharena": ["__init__.pyi", "py.typed"]},
    ext_modules=[ext],
    python_requires=">=3.11",
)
