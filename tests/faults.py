"""The fault run (issue 22): ``kassa agent serve`` as a real process with two POS lanes
over loopback, syncing through a TCP proxy this module controls to a real back office
(uvicorn over embedded SQLite or PostgreSQL, in this process), SIGKILLed at aimed moments:

- ``random``: a moment while both lanes sell (mid-commit, mid-sync, wherever it falls);
- ``mid_push``: the proxy has forwarded a push (``POST /v1/events``) and holds its answer;
- ``after_answer``: the proxy has just relayed a push answer (the till may not have
  settled it yet);
- ``startup``: a fraction of a second after the process was started, before it serves;
- ``outage``: the proxy refuses the back office for ``outage_s`` while the lanes sell on
  (kills during it), then lets it through and kills again while the till catches up. The
  programme counts the till offline ``grace_s`` seconds after its last contact, so the
  outage sends it offline: it sells under the offline limits, then drains its backlog.

The lanes retry a request whose answer they did not get (a kill, a 503) with the same
receipt or refund id until it is answered, as a POS does; what was answered 200 is an
acknowledged operation. At the end the till drains directly to the back office and every
acknowledged commit, refund and registration is traced in the till's journal and at the
back office. ``Counts`` are the run's figures; a good run has 0 lost, 0 doubled, 0 phantom,
0 balance mismatches, 0 chain breaks, 0 flags.

``python tests/faults.py --kills 200 --outage-s 60`` (``make faults``) prints the counts as
JSON; ``tests/test_faults.py`` runs a small one in ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script: the test helpers beside it
    sys.path.insert(0, str(HERE))

from chain import chain_breaks  # noqa: E402

from agent import codec  # noqa: E402
from agent.identify import make_member_code  # noqa: E402
from agent.model import MemberState  # noqa: E402
from agent.seed import demo_phone, demo_programme, member_rows, seed_catalog  # noqa: E402
from agent.service import Agent  # noqa: E402
from agent.store import Store  # noqa: E402
from kassa.demo_sync import LoopbackServer, _free_port  # noqa: E402
from sync.backoffice import project, verify  # noqa: E402
from sync.backoffice.db import Database  # noqa: E402
from sync.backoffice.service import Backoffice  # noqa: E402
from sync.client import SyncClient  # noqa: E402
from sync.enroll import enroll_till  # noqa: E402

MEMBERS = 40
AIMS = ("random", "mid_push", "after_answer", "startup")


@dataclass
class Counts:
    """The figures of one run (operations and events are counts)."""

    kills: int = 0
    kills_by_aim: dict[str, int] = field(default_factory=dict)
    acknowledged: int = 0  # commits, refunds and registrations answered 200
    commits: int = 0
    refunds: int = 0
    registrations: int = 0
    unanswered: int = 0  # in flight when the lanes stopped (neither lost nor counted)
    events: int = 0  # journal rows of the till
    offline_cheques: int = 0  # committed while the till counted itself offline
    lost: int = 0
    doubled: int = 0
    phantom: int = 0
    balance_mismatches: int = 0
    chain_breaks: int = 0
    flags: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def clean(self) -> bool:
        return not (
            self.lost
            or self.doubled
            or self.phantom
            or self.balance_mismatches
            or self.chain_breaks
            or self.flags
            or self.quarantined
        )


class Proxy:
    """A TCP proxy in front of the back office: up (bytes pass both ways) or down (every
    connection refused, open ones cut). ``arm(moment, fn)`` calls ``fn`` once, in the
    proxy's thread, when a push passes: ``"request"`` once its request went on (its answer
    is then held until ``fn`` returns), ``"answer"`` once its answer went back."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._armed: tuple[str, Callable[[], None]] | None = None
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="proxy", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, moment: str, fn: Callable[[], None]) -> None:
        with self._lock:
            self._armed = (moment, fn)

    def disarm(self) -> bool:
        """Drop an armed call that has not fired; whether one was armed."""
        with self._lock:
            was = self._armed is not None
            self._armed = None
            return was

    def _fire(self, moment: str) -> None:
        with self._lock:
            armed = self._armed
            if armed is None or armed[0] != moment:
                return
            self._armed = None
        armed[1]()

    def set_up(self, up: bool) -> None:
        self.up = up
        if not up:
            with self._lock:
                conns = list(self._open)
            for c in conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Cut every connection and wait for the proxy's threads to end."""
        self._stop = True
        self.set_up(False)
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._acceptor.join(10)
        for t in self._threads:
            t.join(10)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            pushing = threading.Event()
            for args in ((client, server, pushing, True), (server, client, pushing, False)):
                t = threading.Thread(target=self._pipe, args=args, daemon=True)
                self._threads.append(t)
                t.start()

    def _pipe(
        self, src: socket.socket, dst: socket.socket, pushing: threading.Event, upstream: bool
    ) -> None:
        try:
            while self.up:
                data = src.recv(65536)
                if not data:
                    break
                if upstream and data.startswith(b"POST /v1/events"):
                    pushing.set()
                    dst.sendall(data)
                    continue
                if not upstream and pushing.is_set():
                    pushing.clear()
                    self._fire("request")
                    dst.sendall(data)
                    self._fire("answer")
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
                with self._lock:
                    self._open.discard(s)


class AgentProcess:
    """``kassa agent serve`` on the till store, its sync through the proxy."""

    def __init__(self, root: Path, store: Path, sync_url: str) -> None:
        self.port = _free_port()
        self.cfg = root / "kassa.toml"
        self.cfg.write_text(
            f'[store]\npath = "{store}"\n[api]\nport = {self.port}\n'
            f'[log]\ndir = "{root / "log"}"\n'
            f'[sync]\nurl = "{sync_url}"\ninterval_s = 0.2\ntimeout_s = 3\n',
            encoding="utf-8",
        )
        self.token_file = root / "api-token"
        self.stderr_path = root / "agent.stderr"
        self.stderr = self.stderr_path.open("a", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "KASSA_CONFIG": str(self.cfg)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kassa.cli", "agent", "serve", "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )

    def token(self) -> str:
        for _ in range(600):
            if self.token_file.exists() and self.token_file.read_text(encoding="utf-8").strip():
                return self.token_file.read_text(encoding="utf-8").strip()
            time.sleep(0.05)
        raise RuntimeError("the agent wrote no API token")

    def wait_ready(self, token: str) -> None:
        with httpx.Client(base_url=self.url, timeout=2) as c:
            for _ in range(600):
                assert self.proc is not None
                if self.proc.poll() is not None:
                    self.stderr.flush()
                    tail = self.stderr_path.read_text(encoding="utf-8")[-1500:]
                    raise RuntimeError(f"the agent exited with {self.proc.returncode}: {tail}")
                with contextlib.suppress(httpx.TransportError):
                    if (
                        c.get("/v1/live").status_code == 200
                        and c.get(
                            "/v1/status", headers={"authorization": f"Bearer {token}"}
                        ).is_success
                    ):
                        return
                time.sleep(0.05)
        raise RuntimeError("the agent did not start serving")

    def kill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.stderr.close()


class Lane(threading.Thread):
    """One POS: cheques for its half of the members (every third spending all it may),
    a refund of every fourth, a registration now and then; each request retried with the
    same ids until it is answered."""

    def __init__(self, lane: int, url: str, token: str, stop: threading.Event) -> None:
        super().__init__(name=f"lane-{lane}", daemon=True)
        self.lane = lane
        self.http = httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=5
        )
        self.stop_event = stop
        self.commits: dict[str, str] = {}  # receipt -> member answered
        self.refunds: dict[str, str] = {}  # refund id -> receipt
        self.registered: dict[str, str] = {}  # phone -> member id
        self.sent_receipts: set[str] = set()
        self.sent_refunds: set[str] = set()
        self.unanswered = 0
        self.errors: list[str] = []

    def call(self, path: str, body: dict[str, Any]) -> httpx.Response | None:
        """The answer to ``body`` at ``path``, retried while there is none (the agent
        killed or starting, 503); None if the lanes were stopped first."""
        while True:
            if self.stop_event.is_set():
                self.unanswered += 1
                return None
            try:
                resp = self.http.post(path, json=body)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if resp.status_code in (429, 503):
                time.sleep(0.05)
                continue
            return resp

    def run(self) -> None:
        n = 0
        try:
            while not self.stop_event.is_set():
                n += 1
                self.one(n)
                time.sleep(0.004)
        except Exception as e:  # reported by the run
            self.errors.append(f"lane {self.lane}: {e!r}")
        finally:
            self.http.close()

    def one(self, n: int) -> None:
        code = make_member_code(100_000_000 + self.lane * (MEMBERS // 2) + n % (MEMBERS // 2))
        found = self.call("/v1/identify", {"input": code})
        if found is None:
            return
        if found.status_code != 200:
            raise AssertionError(f"identify {code}: {found.status_code} {found.text}")
        member = found.json()["member_id"]
        receipt = f"L{self.lane}-{n}"
        cheque = {
            "member_id": member,
            "receipt_id": receipt,
            "lines": [{"sku": "BG-7001"}, {"sku": "SH-2001"}],
            "redeem_points": "max" if n % 3 == 0 else 0,
        }
        self.sent_receipts.add(receipt)
        done = self.call("/v1/commit", cheque)
        if done is None:
            return
        if done.status_code != 200:
            raise AssertionError(f"commit {receipt}: {done.status_code} {done.text}")
        self.commits[receipt] = member
        if n % 4 == 1:
            refund_id = f"F{receipt}"
            self.sent_refunds.add(refund_id)
            back = self.call(
                "/v1/refund", {"refund_id": refund_id, "receipt_id": receipt, "lines": {"1": 1}}
            )
            if back is None:
                return
            if back.status_code != 200:
                raise AssertionError(f"refund {refund_id}: {back.status_code} {back.text}")
            self.refunds[refund_id] = receipt
        if n % 25 == 11:
            phone = demo_phone(50_000 + self.lane * 10_000 + n)
            joined = self.call(
                "/v1/members",
                {
                    "phone": phone,
                    "first_name": "Ира",
                    "consent_programme": True,
                    "consent_marketing": False,
                },
            )
            if joined is not None and joined.status_code == 200:
                self.registered[phone] = joined.json()["card"]["member_id"]
            elif joined is not None and joined.status_code != 409:  # 409: a retry's echo
                raise AssertionError(f"register: {joined.status_code} {joined.text}")


def _backoffice(root: Path, grace_s: int, database: str | None = None) -> Backoffice:
    """A back office over ``database`` (a PostgreSQL URL; embedded SQLite in ``root`` when
    None) with the demo members and the demo programme, whose till counts as offline
    ``grace_s`` seconds after its last contact (so an outage of the run sends it offline:
    it sells under the offline limits)."""
    bo = Backoffice(Database.open(database or str(root / "bo.db")))
    bo.initialise()
    demo = demo_programme()
    bo.publish_rules(
        replace(
            demo,
            version=demo.version + 1,
            offline=replace(demo.offline, online_grace_seconds=grace_s),
        )
    )
    bo.ensure_store("s1", "Тверская")
    key = bytes.fromhex(bo.setting("phone_hash_key"))
    bo.load_members(member_rows(MEMBERS, demo_programme(), key, datetime.now(UTC)), store_id="s1")
    return bo


def run(
    root: Path,
    *,
    kills: int = 12,
    outage_s: float = 6.0,
    outage_kills: int = 2,
    seed: int = 22,
    grace_s: int = 3,
    database: str | None = None,
    say: Callable[[str], None] | None = None,
) -> Counts:
    """One fault run in the empty directory ``root`` (see the module doc); the back office
    on ``database`` (an empty PostgreSQL database's URL) or on SQLite in ``root``."""
    started = time.monotonic()
    rng = random.Random(seed)
    counts = Counts()
    bo = _backoffice(root, grace_s, database)
    store_path = root / "till.db"
    with LoopbackServer(bo) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            enroll_till(store_path, http, bo.enroll_code("s1"), name="k1")
        with Store(store_path) as store:
            seed_catalog(store)
        proxy = Proxy(server.port)
        agent = AgentProcess(root, store_path, proxy.url)
        agent.start()
        token = agent.token()
        agent.wait_ready(token)
        stop = threading.Event()
        lanes = [Lane(i, agent.url, token, stop) for i in (0, 1)]
        for lane in lanes:
            lane.start()

        def killed(aim: str) -> None:
            agent.kill()
            counts.kills += 1
            counts.kills_by_aim[aim] = counts.kills_by_aim.get(aim, 0) + 1

        def restart() -> None:
            agent.start()
            agent.wait_ready(token)

        def aimed(aim: str) -> None:
            if aim == "random":
                time.sleep(rng.uniform(0.2, 1.0))
                killed(aim)
            elif aim == "startup":
                killed("random")
                agent.start()
                time.sleep(rng.uniform(0.05, 0.6))
                killed(aim)
            else:  # at a push, from the proxy's thread
                fired = threading.Event()

                def fire() -> None:
                    killed(aim)
                    fired.set()

                proxy.arm("request" if aim == "mid_push" else "answer", fire)
                if not fired.wait(20) and proxy.disarm():
                    killed("random")  # no push came: a kill anyway
                fired.wait(30)
            restart()

        try:
            plan = [AIMS[i % len(AIMS)] for i in range(max(0, kills - outage_kills - 1))]
            rng.shuffle(plan)
            half = len(plan) // 2
            for i, aim in enumerate(plan[:half]):
                if say:
                    say(f"kill {i + 1}/{kills}: {aim}")
                aimed(aim)
            # The long outage: the lanes sell on, the till is killed during it, then the
            # back office comes back and the till is killed again while it catches up.
            if say:
                say(f"outage of {outage_s:.0f} s")
            proxy.set_up(False)
            for _ in range(outage_kills):
                time.sleep(outage_s / (outage_kills + 1))
                killed("outage")
                restart()
            time.sleep(outage_s / (outage_kills + 1))
            proxy.set_up(True)
            time.sleep(rng.uniform(0.3, 1.0))
            killed("catching_up")
            restart()
            for i, aim in enumerate(plan[half:]):
                if say:
                    say(f"kill {half + outage_kills + i + 2}/{kills}: {aim}")
                aimed(aim)
            time.sleep(1.0)
        finally:
            stop.set()
            for lane in lanes:
                lane.join(30)
            agent.stop()
            proxy.close()
        for lane in lanes:
            counts.problems.extend(lane.errors)
        _trace(counts, store_path, bo, server.url, lanes)
    bo.db.close()
    counts.seconds = round(time.monotonic() - started, 1)
    return counts


def _trace(counts: Counts, path: Path, bo: Backoffice, url: str, lanes: list[Lane]) -> None:
    """Drain the till to the back office and trace every operation (see the module doc)."""
    commits = {r: m for lane in lanes for r, m in lane.commits.items()}
    refunds = {f: r for lane in lanes for f, r in lane.refunds.items()}
    registered = {p: m for lane in lanes for p, m in lane.registered.items()}
    sent_receipts = set().union(*(lane.sent_receipts for lane in lanes))
    sent_refunds = set().union(*(lane.sent_refunds for lane in lanes))
    counts.commits, counts.refunds, counts.registrations = (
        len(commits),
        len(refunds),
        len(registered),
    )
    counts.acknowledged = len(commits) + len(refunds) + len(registered)
    counts.unanswered = sum(lane.unanswered for lane in lanes)
    with Store(path) as store, httpx.Client(base_url=url, timeout=30) as http:
        if store.quick_check() != "ok":
            counts.problems.append("till store quick_check failed")
        agent = Agent(store)
        client = SyncClient(agent, http)
        client.drain()
        project.run_all(bo.context)
        client.confirm_all()
        client.pull_all()
        verify.run_all(bo.context)
        with store.read() as conn:
            journal = conn.execute("SELECT event_id, type, payload FROM outbox").fetchall()
            statuses = dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status"))
            counts.quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
            members = [r[0] for r in conn.execute("SELECT member_id FROM members")]
        counts.events = len(journal)
        if set(statuses) - {"acked"}:
            counts.problems.append(f"journal rows not acked: {statuses}")
        receipts: dict[str, int] = {}
        refund_ids: dict[str, int] = {}
        joined: set[str] = set()
        for _, kind, text in journal:
            p = json.loads(text)
            if kind == "purchase":
                receipts[p["receipt_id"]] = receipts.get(p["receipt_id"], 0) + 1
                counts.offline_cheques += bool(p.get("offline"))
            elif kind == "refund":
                refund_ids[p["refund_id"]] = refund_ids.get(p["refund_id"], 0) + 1
            elif kind == "member_registered":
                joined.add(p["member_id"])
        with bo.db.reading() as tx:
            on_server = dict(tx.all("SELECT event_id, status FROM events"))
            bo_receipts = dict(tx.all("SELECT receipt_id, count(*) FROM purchases GROUP BY 1"))
            bo_refunds = dict(tx.all("SELECT refund_id, count(*) FROM refunds GROUP BY 1"))
            bo_members = {r[0] for r in tx.all("SELECT member_id FROM members")}
            states = dict(tx.all("SELECT member_id, state FROM members"))
            counts.flags = int(tx.one("SELECT count(*) FROM flags")[0])
            flag_kinds = tx.all("SELECT kind, count(*) FROM flags GROUP BY kind")
        if flag_kinds:
            counts.problems.append(f"flags: {dict(flag_kinds)}")
        till_ids = {e for e, _, _ in journal}
        lost = [r for r in commits if receipts.get(r, 0) == 0 or bo_receipts.get(r, 0) == 0]
        lost += [f for f in refunds if refund_ids.get(f, 0) == 0 or bo_refunds.get(f, 0) == 0]
        lost += [m for m in registered.values() if m not in joined or m not in bo_members]
        counts.lost = len(lost)
        doubled = [r for r, n in receipts.items() if n > 1]
        doubled += [r for r, n in bo_receipts.items() if n > 1]
        doubled += [f for f, n in refund_ids.items() if n > 1]
        doubled += [f for f, n in bo_refunds.items() if n > 1]
        counts.doubled = len(doubled)
        phantom = [r for r in receipts if r not in sent_receipts]
        phantom += [f for f in refund_ids if f not in sent_refunds]
        phantom += [e for e in on_server if e not in till_ids]
        phantom += [e for e, s in on_server.items() if s != "applied"]
        counts.phantom = len(phantom)
        for what, items in (("lost", lost), ("doubled", doubled), ("phantom", phantom)):
            if items:
                counts.problems.append(f"{what}: {sorted(items)[:5]}")
        now = agent.clock.now()
        mismatched = [
            m
            for m in members
            if m in states
            and agent.card(m).balance != codec.loads(MemberState, states[m]).balance(now)
        ]
        counts.balance_mismatches = len(mismatched)
        if mismatched:
            counts.problems.append(f"balances differ: {mismatched[:5]}")
        breaks = chain_breaks(store)
        counts.chain_breaks = len(breaks)
        counts.problems.extend(breaks[:5])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--outage-kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--dir", help="keep the run's files here (default: a temporary one)")
    ap.add_argument(
        "--database", help="the back office on this empty PostgreSQL database (default: SQLite)"
    )
    args = ap.parse_args(argv)
    import tempfile

    with contextlib.ExitStack() as stack:
        root = (
            Path(args.dir) if args.dir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        root.mkdir(parents=True, exist_ok=True)
        counts = run(
            root,
            kills=args.kills,
            outage_s=args.outage_s,
            outage_kills=args.outage_kills,
            seed=args.seed,
            database=args.database,
            say=lambda s: print(s, file=sys.stderr, flush=True),
        )
    print(json.dumps(asdict(counts), ensure_ascii=False, indent=1))
    return 0 if counts.clean() and not counts.problems else 1


if __name__ == "__main__":
    sys.exit(main())
