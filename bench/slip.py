"""Slip benchmark: rendering a full loyalty slip with its QR, and importing the printer stack.

What is measured (DESIGN.md §8; all figures from this run, on this machine):

- ``render_*``: ``drivers.render.render(slip, profile)`` of the full sample slip (every
  block: copy mark, provisional, promo, pending and expiring points, tier and collection
  progress, notes) with an image QR (``GS v 0`` raster, the default and the costlier mode),
  on the 58 mm (``generic-58``, 32 columns) and 80 mm (``epson-tm-80``, 48 columns)
  presets, alternating. Every slip carries a *different* member code, so the QR matrix
  cache never hits: each render builds its QR from scratch. p50/p99 wall time and p99 of
  this thread's CPU time (``time.thread_time_ns``; wall minus CPU is, roughly, time the
  scheduler gave to other processes). ``render_reprint_p99_ms``: the same slip again (QR
  cached), as a reprint costs. ``qr_matrix_p99_ms``: the QR symbol alone (uncached).
- ``floor_*``: the physical floor, measured interleaved with the renders: wall time of a
  pure-Python busy loop calibrated to the render's median CPU time. Its p99 is what the
  scheduler alone adds to anything of that length on this machine at this moment;
  ``render_p99_over_floor`` is the render's tail against it.
- ``first_render_ms``: the first render in a fresh process, which pays the lazy import of
  the ``qrcode`` package (it pulls in PIL); ``drivers.qr.warm_up()`` can move this off the
  first cheque.
- ``import_*`` (warm bytecode cache, as on an installed till): start-up cost of ``import
  drivers.render, drivers.profiles, drivers.calibrate, drivers.escpos`` in a fresh
  interpreter, as the median over alternating runs of ``python -c`` with and without that
  import. Two baselines: a bare interpreter (``import_added_bare_ms``), and one that has
  already imported what the cashier UI loads anyway: the standard modules Textual needs
  (logging, dataclasses, typing, pathlib, datetime, re, inspect) and the core's slip model
  (``agent.slip``): ``import_added_ms``. ``import_added_cpu_ms`` is the same difference in
  the children's CPU time (``getrusage``), the figure with a target: the wall time of a
  50 ms process on a busy machine measures the scheduler more than the import. In the
  same child: whether ``escpos``, ``qrcode``, ``PIL`` got imported and whether the root
  logger gained a handler (python-escpos calls ``logging.basicConfig()`` on import).
- ``loadavg_1m_before``: the machine's load when the run started; with more runnable
  processes than ``cpus``, wall-time tails measure the scheduler (compare the CPU p99).
- ``python_escpos_import_ms``: for scale, importing ``escpos.printer`` through
  ``drivers.escpos.import_python_escpos`` (side effects contained): what the USB transport
  does not pay (it opens printers with pyusb; python-escpos is a dev dependency only).

Why: the slip prints right after the cheque, on the cashier's critical path; its render
must stay far below the printer's own time to first dot. And the cashier UI must start
fast on a small till PC: the printer stack may not drag python-escpos (temp pickle, root
logging) or PIL into every start.

Usage: ``python bench/slip.py [--quick] [--renders N]``. The last line printed is the JSON
result; exit status is 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {
    "render_p99_ms": 5.0,  # full slip with an uncached image QR, at most
    "import_added_cpu_ms": 15.0,  # printer stack on top of what the UI imports anyway, at most
}
FULL = {"renders": 4000, "import_runs": 21}
QUICK = {"renders": 600, "import_runs": 11}

STACK = "import drivers.render, drivers.profiles, drivers.calibrate, drivers.escpos"
UI_STDLIB = "import logging, dataclasses, typing, pathlib, datetime, re, inspect, agent.slip"


def pct(values: list[int], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of nanoseconds, in milliseconds."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1] / 1e6


def member_code(n: int) -> str:
    from agent.identify import make_member_code

    return make_member_code(200_000_000_000 + n)


def spin(n: int) -> int:
    """Pure-Python busy work: the floor's stand-in for a render of the same CPU length."""
    x = 0
    for i in range(n):
        x ^= i
    return x


def calibrate_spin(target_ns: int) -> int:
    """Iterations of :func:`spin` that take ``target_ns`` of this thread's CPU time."""
    n = 20_000
    c0 = time.thread_time_ns()
    for _ in range(20):
        spin(n)
    per = (time.thread_time_ns() - c0) / (20 * n)
    return max(1, round(target_ns / per))


def bench_render(renders: int) -> dict[str, Any]:
    from drivers import qr
    from drivers.calibrate import sample_slip
    from drivers.profiles import load_profile
    from drivers.render import render

    profiles = [load_profile("generic-58"), load_profile("epson-tm-80")]
    base = replace(sample_slip(), training=False, copy=True)
    qr.warm_up()
    warm_cpu: list[int] = []
    for i in range(60):  # warm caches of code paths, not of payloads
        c0 = time.thread_time_ns()
        render(replace(base, qr_payload=member_code(10_000_000 + i)), profiles[i % 2])
        warm_cpu.append(time.thread_time_ns() - c0)
    spin_n = calibrate_spin(int(statistics.median(warm_cpu)))
    wall: dict[str, list[int]] = {p.name: [] for p in profiles}
    cpu: list[int] = []
    floor: list[int] = []
    sizes: dict[str, int] = {}
    for i in range(renders):
        profile = profiles[i % 2]
        slip = replace(base, qr_payload=member_code(i))
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        data = render(slip, profile)
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        wall[profile.name].append(t1 - t0)
        cpu.append(c1 - c0)
        sizes[profile.name] = len(data)
        t0 = time.perf_counter_ns()  # the floor, interleaved: same moment, same CPU length
        spin(spin_n)
        floor.append(time.perf_counter_ns() - t0)
    reprint: list[int] = []
    slip = replace(base, qr_payload=member_code(0))
    for i in range(max(100, renders // 4)):
        t0 = time.perf_counter_ns()
        render(slip, profiles[i % 2])
        reprint.append(time.perf_counter_ns() - t0)
    matrix: list[int] = []
    for i in range(max(100, renders // 4)):
        payload = member_code(20_000_000 + i)
        t0 = time.perf_counter_ns()
        qr.matrix(payload)
        matrix.append(time.perf_counter_ns() - t0)
    both = wall["generic-58"] + wall["epson-tm-80"]
    return {
        "render_p50_ms": round(pct(both, 50), 3),
        "render_p99_ms": round(pct(both, 99), 3),
        "render_max_ms": round(max(both) / 1e6, 3),
        "render_58_p99_ms": round(pct(wall["generic-58"], 99), 3),
        "render_80_p99_ms": round(pct(wall["epson-tm-80"], 99), 3),
        "render_cpu_p50_ms": round(pct(cpu, 50), 3),
        "render_cpu_p99_ms": round(pct(cpu, 99), 3),
        "floor_p50_ms": round(pct(floor, 50), 3),
        "floor_p99_ms": round(pct(floor, 99), 3),
        "render_p99_over_floor": round(pct(both, 99) / pct(floor, 99), 2),
        "render_reprint_p99_ms": round(pct(reprint, 99), 3),
        "qr_matrix_p50_ms": round(pct(matrix, 50), 3),
        "qr_matrix_p99_ms": round(pct(matrix, 99), 3),
        "job_bytes_58": sizes["generic-58"],
        "job_bytes_80": sizes["epson-tm-80"],
    }


CHILD_ENV = dict(os.environ)


def run_child(code: str) -> tuple[float, str, float]:
    """Run ``python -c code``: (wall ms, stdout, CPU ms of the child: user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=CHILD_ENV,
    )
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, out.stdout.strip(), cpu


def bench_imports(runs: int) -> dict[str, Any]:
    probe = (
        "import json, logging, sys\n"
        "heavy = sorted({n.split('.')[0] for n in sys.modules} & {'escpos', 'qrcode', 'PIL'})\n"
        "print(json.dumps({'heavy': heavy, 'handlers': len(logging.getLogger().handlers)}))"
    )
    variants = {
        "bare": "pass",
        "stack": STACK,
        "ui": UI_STDLIB,
        "ui_stack": f"{UI_STDLIB}\n{STACK}",
    }
    for code in variants.values():  # compile to the bytecode cache once, untimed
        run_child(code)
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(runs):  # alternate, so load on the machine falls on all alike
        for key, code in variants.items():
            wall, _, used = run_child(code)
            times[key].append(wall)
            cpu[key].append(used)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    seen = json.loads(run_child(f"{STACK}\n{probe}")[1])
    first_code = (
        f"import time\n{STACK}\n"
        "from drivers.calibrate import sample_slip\nfrom drivers.profiles import load_profile\n"
        "t = time.perf_counter()\n"
        "drivers.render.render(sample_slip(), load_profile('epson-tm-80'))\n"
        "print((time.perf_counter() - t) * 1000)"
    )
    run_child(first_code)  # bytecode of qrcode and PIL into the cache, untimed
    first = statistics.median(float(run_child(first_code)[1]) for _ in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        escpos_code = (
            "import time\nfrom pathlib import Path\n"
            "from drivers.escpos import import_python_escpos\n"
            "t = time.perf_counter()\n"
            f"import_python_escpos(Path({tmp!r}))\n"
            "print((time.perf_counter() - t) * 1000)"
        )
        run_child(escpos_code)  # first import on a machine also writes the pickle: untimed
        escpos_ms = statistics.median(float(run_child(escpos_code)[1]) for _ in range(3))
    return {
        "import_added_cpu_ms": round(med_cpu["ui_stack"] - med_cpu["ui"], 1),
        "import_added_ms": round(med["ui_stack"] - med["ui"], 1),
        "import_added_bare_ms": round(med["stack"] - med["bare"], 1),
        "interpreter_start_ms": round(med["bare"], 1),
        "heavy_modules_loaded": seen["heavy"],
        "root_log_handlers_after_import": seen["handlers"],
        "first_render_ms": round(first, 1),
        "python_escpos_import_ms": round(escpos_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (not a proof)")
    parser.add_argument("--renders", type=int, help="slips to render")
    args = parser.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    if args.renders:
        cfg["renders"] = args.renders
    load_before = round(os.getloadavg()[0], 2)  # other processes competing for the CPUs
    gc.collect()
    rendering = bench_render(cfg["renders"])
    with tempfile.TemporaryDirectory() as cache:
        # A till runs from an installed package with its .pyc files; this environment may
        # set PYTHONDONTWRITEBYTECODE, which would time the compiler instead. Children get a
        # private bytecode cache (nothing written into the repository).
        CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        CHILD_ENV["PYTHONPYCACHEPREFIX"] = cache
        imports = bench_imports(cfg["import_runs"])
    result: dict[str, object] = {
        "bench": "slip",
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "loadavg_1m_before": load_before,
        "renders": cfg["renders"],
        **rendering,
        **imports,
    }
    ok = (
        rendering["render_p99_ms"] <= TARGETS["render_p99_ms"]
        and imports["import_added_cpu_ms"] <= TARGETS["import_added_cpu_ms"]
        and not imports["heavy_modules_loaded"]
        and imports["root_log_handlers_after_import"] == 0
    )
    result["targets"] = {
        **TARGETS,
        # False: a busy loop of the render's CPU length alone misses the p99 target on this
        # machine right now (other processes hold the CPUs): no code could meet it here.
        "p99_target_above_floor": rendering["floor_p99_ms"] <= TARGETS["render_p99_ms"],
        "heavy_modules_loaded": [],
        "root_log_handlers_after_import": 0,
    }
    result["ok"] = bool(ok)
    for key, value in result.items():
        if key not in {"bench", "targets", "ok"}:
            print(f"{key:32} {value}", file=sys.stderr)
    sys.stderr.flush()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
