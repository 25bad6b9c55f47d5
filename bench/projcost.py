"""Projector cost benchmark: the projector's own work per event on a fixed backlog,
counted in instructions so that it can be compared on a shared, loaded machine.

What is measured (DESIGN.md §8):

- ``build``: once per database, a back office with ``--members`` demo members and a till
  (enrolled over HTTP) whose outbox holds ``--events`` real purchase events, filled as
  ``drain.py`` fills it (``_synclib.fill_outbox``, fixed seed), drained into the real
  stack served without its projector (``ServerProcess(workers=False)``: the pushes only
  accept). The accepted, unprojected state is kept as a snapshot: a copy of the SQLite
  file, or a PostgreSQL database (``kassa_projcost_<kind>``) used as a template;
- ``run``: a fresh copy of the snapshot (migrated to this checkout's schema), then
  ``project.run_once`` in full-size passes (``project.CHUNK``) until ``--project`` events
  are applied; prints the events applied, the process CPU time and its CPU per event
  (``--profile FILE``: a cProfile of it);
- ``callgrind``: ``run`` under ``valgrind --tool=callgrind`` for ``--small`` and for
  ``--project`` events; ``instructions_per_event`` = the difference of the two
  instruction counts over the difference of the events, so start-up, imports and the
  first pass's plans cancel out. Only the projector process is counted (on PostgreSQL
  the database server's own work is not in it). Instruction counts repeat to a fraction
  of a percent whatever else the machine runs.

Usage: ``python bench/projcost.py build --db sqlite|postgresql [--events N] [--members M]``;
``python bench/projcost.py run --db ... [--project K] [--profile FILE]``;
``python bench/projcost.py callgrind --db ... [--small K1] [--project K2]``.
Default 3,000 events over 5,000 members, ``--small`` 500 and ``--project`` 2,500
(``--quick``: 100 and 300). The last line printed is the JSON result (``ok``: every event
asked for was applied; instruction counts have no floor to be a ratio of).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synclib as lib

SNAP_DIR = Path(tempfile.gettempdir()) / "kassa-projcost"
SEED = 20260501


def _snap_name(kind: str) -> str:
    return f"kassa_projcost_{kind}"


def build(kind: str, events: int, members: int) -> dict[str, Any]:
    """Make the snapshot of ``kind``: ``events`` accepted, unprojected purchase events."""
    from agent.service import Agent
    from agent.store import Store
    from sync.backoffice import project
    from sync.client import SyncClient

    SNAP_DIR.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="kassa-projcost-build-"))
    out: dict[str, Any] = {"bench": "projcost", "step": "build", "db": kind}
    try:
        with lib.backoffice_url(kind, tmp, f"-{kind}") as url:
            bo = lib.open_backoffice(url, members, datetime.now(UTC))
            try:
                store_path = tmp / "till.db"
                with lib.ServerProcess(url, workers=False) as server:
                    lib.enroll(bo, server.base_url, store_path, "projcost", bootstrap=True)
                    out.update(lib.fill_outbox(store_path, events, members, seed=SEED))
                    with Store(store_path) as store, lib.client(server.base_url) as http:
                        SyncClient(Agent(store), http).drain()
                out["backlog"] = project.backlog(bo.context)
            finally:
                bo.db.close()
            if kind == "sqlite":
                shutil.copyfile(url, SNAP_DIR / "sqlite.db")
            else:
                import psycopg

                snap = _snap_name(kind)
                with psycopg.connect(lib.PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {snap} WITH (FORCE)")
                    conn.execute(f"CREATE DATABASE {snap} TEMPLATE {url.rsplit('/', 1)[1]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


@contextmanager
def fresh_copy(kind: str) -> Iterator[str]:
    """A database URL holding a fresh copy of the snapshot of ``kind``."""
    if kind == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="kassa-projcost-run-"))
        try:
            shutil.copyfile(SNAP_DIR / "sqlite.db", tmp / "bo.db")
            yield str(tmp / "bo.db")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    import psycopg

    name = f"kassa_projcost_run_{os.getpid()}"
    with psycopg.connect(lib.PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {_snap_name(kind)}")
    try:
        yield f"{lib.PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(lib.PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(kind: str, events: int, profile: str | None) -> dict[str, Any]:
    """Project ``events`` of the snapshot's backlog in full-size passes."""
    from sync.backoffice import project
    from sync.backoffice.db import Database
    from sync.backoffice.schema import migrate
    from sync.backoffice.service import Backoffice

    with fresh_copy(kind) as url:
        db = Database.open(url)
        try:
            migrate(db)  # a snapshot built before a later migration
            ctx = Backoffice(db).context
            prof = None
            if profile:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            cpu0 = time.process_time()
            done = 0
            while done < events:
                n = project.run_once(ctx, min(project.CHUNK, events - done))
                if not n:
                    break
                done += n
            cpu = time.process_time() - cpu0
            if prof is not None and profile:
                prof.disable()
                prof.dump_stats(profile)
            with db.reading() as tx:
                statuses = dict(tx.all("SELECT status, count(*) FROM events GROUP BY status"))
        finally:
            db.close()
    return {
        "bench": "projcost",
        "step": "run",
        "db": kind,
        "projected": done,
        "cpu_s": round(cpu, 3),
        "cpu_us_per_event": round(cpu / max(1, done) * 1e6, 1),
        "events_by_status": {str(k): int(v) for k, v in statuses.items()},
    }


def _instructions(kind: str, events: int, tmp: Path) -> int:
    """Instructions (callgrind's ``Ir``) of one ``run`` of ``events`` events."""
    out = tmp / f"callgrind.{kind}.{events}"
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "run",
            "--db",
            kind,
            "--project",
            str(events),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["projected"] != events:
        raise RuntimeError(f"projected {result['projected']} of {events} events")
    m = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if m is None:
        raise RuntimeError(f"no instruction count from callgrind: {proc.stderr[-500:]}")
    return int(m.group(1))


def callgrind(kind: str, small: int, events: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="kassa-projcost-cg-"))
    try:
        low = _instructions(kind, small, tmp)
        high = _instructions(kind, events, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "bench": "projcost",
        "step": "callgrind",
        "db": kind,
        "small": small,
        "events": events,
        "instructions_small": low,
        "instructions": high,
        "instructions_per_event": round((high - low) / (events - small)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("build", "run", "callgrind"))
    parser.add_argument(
        "--quick", action="store_true", help="short run: --small 100 and --project 300"
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=3_000, help="build: events accepted")
    parser.add_argument("--members", type=int, default=5_000, help="build: members")
    parser.add_argument("--project", type=int, default=2_500, help="events to project")
    parser.add_argument("--small", type=int, default=500, help="callgrind: the smaller run")
    parser.add_argument("--profile", help="run: write a cProfile of the passes here")
    args = parser.parse_args(argv)
    if args.quick:
        args.small, args.project = 100, 300
    if args.step == "build":
        result = build(args.db, args.events, args.members)
    elif args.step == "run":
        result = run(args.db, args.project, args.profile)
    else:
        if not 0 < args.small < args.project:
            parser.error("--small must be above 0 and below --project")
        result = callgrind(args.db, args.small, args.project)
    # Not a speed target (instructions have no floor to compare with): the run is sound
    # when every event asked for was applied.
    applied = result.get("events_by_status", {}).get("applied", result.get("projected"))
    sound = args.step == "build" or applied == result.get("projected", applied)
    result["targets"] = {"every_event_applied": sound}
    result["ok"] = sound
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
