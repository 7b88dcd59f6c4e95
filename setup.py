"""Build the Cython CPU kernels (kernels/cpu/*.pyx) into the ``fastnn.kernels`` package.

Everything else about the project lives in pyproject.toml.  The build is portable by
default (no ``-march=native``): an installed package must run on any x86-64 or ARM CPU.
Faster code paths come from runtime CPU dispatch inside the kernels; ``FASTNN_NATIVE=1``
opts in to ``-march=native`` for a local build.

Developer knobs (environment variables):
  FASTNN_NATIVE=1            compile with -march=native (never for a wheel you ship)
  FASTNN_EXTENSIONS=a,b      build only these kernel modules (quick in-place rebuilds)
  FASTNN_DEBUG=1             -O0 -g and bounds checking on, for hunting a crash
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent
KERNEL_DIR = Path("kernels") / "cpu"

DEBUG = os.environ.get("FASTNN_DEBUG") == "1"

# Unsafe directives are set once for the whole project; every argument is validated in
# Python (fastnn/_args.py) before a kernel runs.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "embedsignature": True,
    "freethreading_compatible": True,
}


def _compile_args() -> list[str]:
    if sys.platform == "win32":
        return ["/O2", "/openmp"]
    args = ["-O0", "-g"] if DEBUG else ["-O3"]
    # -fno-trapping-math: no kernel reads the floating-point exception flags, and without
    # it gcc will not turn a conditional FP operation into a vector select, so loops with
    # a ternary (the activations, softmax's exp) stay scalar.
    args += ["-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    args += ["-Wno-unused-function", "-Wno-unreachable-code"]
    if os.environ.get("FASTNN_NATIVE") == "1":
        args.append("-march=native")
    return args


def _link_args() -> list[str]:
    return [] if sys.platform == "win32" else ["-fopenmp"]


def _extensions() -> list[Extension]:
    wanted = os.environ.get("FASTNN_EXTENSIONS")
    only = {name.strip() for name in wanted.split(",")} if wanted else None
    headers = [str(p) for p in sorted(KERNEL_DIR.glob("*.h"))]
    extensions = []
    for source in sorted(KERNEL_DIR.glob("*.pyx")):
        if only is not None and source.stem not in only:
            continue
        extensions.append(
            Extension(
                f"fastnn.kernels.cpu.{source.stem}",
                [str(source)],
                include_dirs=[np.get_include(), str(KERNEL_DIR)],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=_compile_args(),
                extra_link_args=_link_args(),
                depends=headers,
            )
        )
    return extensions


def _packages() -> list[str]:
    """fastnn's Python packages plus the kernel packages that live under kernels/."""
    packages = find_packages(include=["fastnn", "fastnn.*"])
    for init in sorted(Path("kernels").rglob("__init__.py")):
        parts = init.parent.parts[1:]
        packages.append(".".join(("fastnn", "kernels", *parts)))
    return packages


setup(
    packages=_packages(),
    package_dir={"fastnn.kernels": "kernels"},
    # jax/*: the sources of fastnn.jax's XLA FFI handler, compiled on first use (fastnn/jax/_ffi.py)
    package_data={
        "fastnn.kernels": [
            "cuda/*.cu",
            "cuda/*.cuh",
            "cpu/*.pxd",
            "cpu/*.pxi",
            "cpu/*.h",
            "jax/*.c",
            "jax/*.cc",
        ]
    },
    ext_modules=cythonize(
        _extensions(),
        compiler_directives=DIRECTIVES,
        include_path=[str(KERNEL_DIR)],
        nthreads=os.cpu_count() or 1,
        quiet=True,
    ),
)
