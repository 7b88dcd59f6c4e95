"""``fastnn info``: what fastnn can use on this machine."""

from __future__ import annotations

import argparse
import json
import platform
import sys

HELP = (
    "show the version, the backends (and why one is unavailable), the CPU, BLAS, threads, "
    "SIMD and the instruction set each kernel family runs"
)

#: CPU features worth knowing for our kernels, in numpy's naming.
SIMD_FEATURES = (
    "SSE42", "AVX", "F16C", "FMA3", "AVX2", "AVX512F", "AVX512CD", "AVX512_SKX",
    "AVX512_CLX", "AVX512_CNL", "AVX512_ICL", "AVX512_SPR", "NEON", "ASIMD", "ASIMDHP",
    "SVE",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def simd_features() -> list[str]:
    """The SIMD extensions this CPU supports (as detected by NumPy at start-up)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # pragma: no cover - older numpy layouts
        return []
    return [name for name in SIMD_FEATURES if features.get(name)]


def collect() -> dict:
    """Everything ``fastnn info`` reports, as a dict."""
    import numpy as np
    import scipy
    from threadpoolctl import threadpool_info

    import fastnn
    from fastnn import _isa, _machine, _threads

    backend_rows = list(_backend_rows())  # loads the CPU kernels (and their OpenMP runtime)
    pools = threadpool_info()
    return {
        "fastnn": fastnn.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "backends": {name: {"available": ok, "detail": why} for name, ok, why in backend_rows},
        "threads": fastnn.get_num_threads(),
        "adaptive_teams": _threads.adaptive_teams(),
        "blas": [
            {
                "library": p.get("internal_api"),
                "version": p.get("version"),
                "threads": p.get("num_threads"),
                "architecture": p.get("architecture"),
                "path": p.get("filepath"),
            }
            for p in pools
            if p.get("user_api") == "blas"
        ],
        "openmp": [
            {
                "library": p.get("internal_api"),
                "threads": p.get("num_threads"),
                "path": p.get("filepath"),
            }
            for p in pools
            if p.get("user_api") == "openmp"
        ],
        "simd": simd_features(),
        "cpu": _machine.cpu_model(),
        "kernel_isa": {
            family: {"level": level, "chosen_by": how}
            for family, (level, how) in _isa.report().items()
        },
        "gemm_tile": _gemm_tile(),
        "autotune": {
            "enabled": fastnn._autotune.autotune_enabled(),
            "cache": str(fastnn._autotune.cache_path()),
        },
    }


def _gemm_tile() -> dict:
    """The blocked GEMM's AVX-512 tile speed (the 3-vector tile's time per multiply-add
    relative to the 2-vector tile's) and how it was set, the rows of B ahead that a
    few-row product prefetches and the widest transposed-A product on column tiles
    (both measured at calibration)."""
    from fastnn._backends.cpu import _gemm

    ratio, how = _gemm.tile_speed()
    rows, rows_how = _gemm.few_prefetch()
    width, width_how = _gemm.narrow_t_n()
    return {
        "t48_time": round(ratio, 4),
        "chosen_by": how,
        "few_prefetch_rows": rows,
        "few_prefetch_chosen_by": rows_how,
        "narrow_t_n": width,
        "narrow_t_n_chosen_by": width_how,
    }


def _backend_rows():
    import fastnn

    for name, (ok, why) in fastnn.backends().items():
        yield name, ok, why


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"fastnn {info['fastnn']}  (Python {info['python']}, NumPy {info['numpy']}, "
        f"SciPy {info['scipy']})"
    )
    print(f"platform: {info['platform']}")
    print(f"CPU: {info['cpu']}")
    print("backends:")
    for name, row in info["backends"].items():
        mark = "yes" if row["available"] else "no "
        print(f"  {name:<11} {mark}  {row['detail']}")
    print(f"fastnn threads: {info['threads']} (set_num_threads / OMP_NUM_THREADS)")
    print(
        "team sizing under load: "
        + (
            "on (regions use the CPUs other processes leave free, up to the cap; "
            "FASTNN_ADAPTIVE_THREADS=0 turns it off)"
            if info["adaptive_teams"]
            else "off (FASTNN_ADAPTIVE_THREADS=0): regions always use the cap"
        )
    )
    for lib in info["blas"]:
        print(
            f"BLAS: {lib['library']} {lib['version']} ({lib['architecture']}), "
            f"{lib['threads']} threads  [{lib['path']}]"
        )
    for lib in info["openmp"]:
        print(f"OpenMP: {lib['library']}, {lib['threads']} threads  [{lib['path']}]")
    print(f"SIMD: {' '.join(info['simd']) or 'none detected'}")
    isa = info["kernel_isa"]
    levels = ", ".join(f"{f} {row['level']} ({row['chosen_by']})" for f, row in isa.items())
    print(f"kernel instruction sets: {levels}")
    tile = info["gemm_tile"]
    print(
        "gemm register tiles at AVX-512: 8 rows x 3 vectors at "
        f"{tile['t48_time']:.2f}x the time per multiply-add of 8 x 2 ({tile['chosen_by']}); "
        "each product takes the faster for its width"
    )
    print(
        f"gemm few-row products prefetch B {tile['few_prefetch_rows']} rows ahead "
        f"({tile['few_prefetch_chosen_by']})"
    )
    print(
        f"gemm products with a transposed A up to {tile['narrow_t_n']} columns wide run "
        f"column tiles, wider ones packed tiles ({tile['narrow_t_n_chosen_by']})"
    )
    tuning = info["autotune"]
    state = "on" if tuning["enabled"] else "off (FASTNN_AUTOTUNE=0 or fastnn.autotune(False))"
    print(f"autotune: {state}; cache {tuning['cache']}")
    return 0
