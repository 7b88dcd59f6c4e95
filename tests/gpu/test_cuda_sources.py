"""Every CUDA C source of the ``cupy`` backend compiles with nvcc for sm_80 and sm_90.

Each kernels/cuda/*.cu file is compiled as NVRTC will see it (fastnn/_backends/cupy/
_sources.py pastes the headers in) with every template instantiation the backend asks
for, warnings as errors, and the options CuPy adds (-ftz=true).  The PTX must hold one
entry point per instantiation.  Skipped, with the reason, only where nvcc is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fastnn._backends.cupy import _sources

ARCHS = ("sm_80", "sm_90")
NVCC = shutil.which("nvcc") or next(
    (str(p) for p in (Path("/usr/local/cuda/bin/nvcc"),) if p.exists()), None
)
requires_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not installed")

FILES = sorted(_sources.KERNELS)


def _every_expression(file: str) -> list[str]:
    return _sources.expressions(file, "float") + _sources.expressions(file, "double")


def _translation_unit(file: str) -> str:
    """The source NVRTC compiles, plus a table that takes the address of (and so
    instantiates) every kernel the backend looks up by name."""
    table = ",\n    ".join(f"(void*)&{name}" for name in _every_expression(file))
    return (
        f"{_sources.source_text(file)}\n\n"
        "extern void* const fastnn_instantiations[];\n"
        f"void* const fastnn_instantiations[] = {{\n    {table}\n}};\n"
    )


@pytest.fixture(scope="module")
def ptx(tmp_path_factory) -> dict[str, dict[str, str]]:
    """{arch: {file: PTX text}}: one nvcc process per architecture, both at once."""
    folder = tmp_path_factory.mktemp("cuda_sources")
    sources = []
    for file in FILES:
        path = folder / file
        path.write_text(_translation_unit(file))
        sources.append(str(path))
    runs = {}
    for arch in ARCHS:
        out = folder / arch
        out.mkdir()
        command = [NVCC, "--ptx", f"-arch={arch}", "-std=c++17", "-ftz=true"]
        command += ["-Werror", "all-warnings", *sources, "-odir", str(out)]
        runs[arch] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    result = {}
    for arch, process in runs.items():
        log, _ = process.communicate()
        assert process.returncode == 0, f"nvcc -arch={arch} failed:\n{log}"
        outputs = folder / arch
        result[arch] = {f: (outputs / f).with_suffix(".ptx").read_text() for f in FILES}
    return result


@requires_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", FILES)
def test_compiles_to_one_entry_per_instantiation(ptx, arch, file):
    entries = re.findall(r"^\s*(?:\.visible\s+)?\.entry\s+(\w+)\(", ptx[arch][file], re.M)
    assert len(entries) == len(set(entries)) == len(_every_expression(file)), entries


def test_every_source_is_listed_and_every_kernel_instantiated():
    folder = _sources.source_dir()
    on_disk = sorted(p.name for p in folder.glob("*.cu"))
    assert on_disk == FILES
    for file in FILES:
        text = (folder / file).read_text()
        kernels = re.findall(r"__global__\s+void\s+(\w+)\s*\(", text)
        assert sorted(kernels) == sorted(_sources.KERNELS[file]), file


def test_sources_are_self_contained():
    """NVRTC has no standard headers: the sources include only our own .cuh files, and
    what reaches NVRTC has every include pasted in."""
    for path in sorted(_sources.source_dir().glob("*.cu*")):
        includes = re.findall(r'^\s*#\s*include\s*([<"][^>"]+[>"])', path.read_text(), re.M)
        assert all(inc.startswith('"') and inc.endswith('.cuh"') for inc in includes), path
    for file in FILES:
        assert not re.search(r"^\s*#\s*include", _sources.source_text(file), re.M), file
