"""``sluicegate serve --workers N``: N worker processes on one port, and their supervisor.

Each worker is a whole gateway (``gateway.proxy.server``) in a fresh interpreter (the
``spawn`` start method: no state copied from this process) and binds its own listening
socket with ``SO_REUSEPORT``, so the kernel spreads connections over the workers and a
worker that goes away takes only its own socket with it. They share nothing but the
metrics: prometheus-client's multiprocess mode keeps every worker's values in files in a
fresh directory this process creates and removes, so ``/metrics`` on any worker reports
the whole server, and a dead worker's counts stay in the totals.

The supervisor only watches. A worker that dies is started again, after a backoff that
doubles while restarts keep failing; SIGTERM and SIGINT drain every worker (each waits
for its requests in flight, ``drain_seconds`` at most) and SIGHUP makes each reload its
policies. A worker whose supervisor is gone drains and exits by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Literal

from prometheus_client.multiprocess import mark_process_dead

from gateway.metrics import Metrics
from gateway.policy import PolicyError
from gateway.policy.store import PolicyStore
from gateway.proxy.app import create_app
from gateway.proxy.server import (
    END_GRACE_SECONDS,
    EXIT_OK,
    EXIT_USAGE,
    announce,
    cannot_listen,
    configure_process,
    log_problems,
    run_server,
)
from gateway.settings import Settings

log = logging.getLogger("sluicegate.supervisor")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 30.0
_STABLE_SECONDS = 30.0
"""A worker that ran this long before dying restarts after the shortest backoff again."""
_KILL_MARGIN_SECONDS = 5.0
"""Past the drain and the end grace, how long a draining worker has before SIGKILL."""


def worker_count(workers: int | Literal["auto"], cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """``auto``: the CPUs this process may run on, capped by a container's CPU limit
    (a pod limited to 2 CPUs on a 64-core node must not start 64 workers)."""
    if workers != "auto":
        return workers
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cgroup_cpu_limit(cpu_max)
    return max(1, min(usable or 1, limit or sys.maxsize))


def cgroup_cpu_limit(cpu_max: Path) -> int | None:
    """Whole CPUs allowed by cgroup v2's ``cpu.max`` (``"<quota> <period>"`` or ``"max ..."``)."""
    try:
        quota, period = cpu_max.read_text().split()
        return math.ceil(int(quota) / int(period)) if quota != "max" else None
    except (OSError, ValueError, ZeroDivisionError):
        return None


def supervise(settings: Settings, workers: int) -> int:
    configure_process(settings)
    if settings.port == 0:
        log.error("--workers above 1 needs a fixed --port (each worker binds it)")
        return EXIT_USAGE
    try:  # fail here, once, rather than in every worker and again at every restart
        PolicyStore(settings.policy, settings.default_policy)
    except PolicyError as exc:
        log_problems(exc)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="sluicegate-metrics-") as metrics_dir:
        # Read by prometheus-client when a worker imports it, so it is set before any starts.
        os.environ[MULTIPROC_ENV] = metrics_dir
        return _Supervisor(settings, workers, Path(metrics_dir)).run()


def _worker(settings: Settings, metrics_dir: Path, ready: Connection) -> None:
    """A worker process's whole life; its exit code tells the supervisor how it ended."""
    configure_process(settings)
    try:
        app = create_app(settings, Metrics(multiprocess_dir=metrics_dir))
    except PolicyError as exc:
        log_problems(exc)
        sys.exit(EXIT_USAGE)

    def listening() -> None:
        ready.send(os.getpid())
        ready.close()

    parent = multiprocessing.parent_process()
    try:
        asyncio.run(
            run_server(
                app,
                settings,
                reuse_port=True,
                listening=listening,
                parent_sentinel=parent.sentinel if parent is not None else None,
            )
        )
    except OSError as exc:  # the port is taken by something that is not a worker
        cannot_listen(settings, exc)
        sys.exit(EXIT_USAGE)


@dataclass(slots=True)
class _Slot:
    """One worker position: the process now in it and how its restarts have gone."""

    number: int
    process: BaseProcess | None = None
    ready: Connection | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class _Supervisor:
    def __init__(self, settings: Settings, workers: int, metrics_dir: Path) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.slots = [_Slot(number) for number in range(1, workers + 1)]
        self.context = multiprocessing.get_context("spawn")
        self.signals: list[int] = []
        self.wake_read, self.wake_write = socket.socketpair()

    def run(self) -> int:
        self.wake_read.setblocking(False)
        self.wake_write.setblocking(False)
        # A signal handler only notes the signal; the wake-up byte ends the ``wait`` below.
        signal.set_wakeup_fd(self.wake_write.fileno())
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._note)
        try:
            failed = self._start_all()
            if failed is not None:
                return failed
            announce(self.settings, workers=len(self.slots))
            self._watch()
            self._stop_all()
            log.info("every worker has stopped")
            return EXIT_OK
        finally:
            signal.set_wakeup_fd(-1)
            self.wake_read.close()
            self.wake_write.close()

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _start(self, slot: _Slot) -> None:
        ready, child_end = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker,
            args=(self.settings, self.metrics_dir, child_end),
            name=f"sluicegate-worker-{slot.number}",
        )
        process.start()
        child_end.close()  # so ``ready`` reads EOF if the worker dies before listening
        slot.process, slot.ready, slot.started, slot.restart_at = (
            process,
            ready,
            time.monotonic(),
            None,
        )
        log.info("worker %d started (pid %d)", slot.number, process.pid)

    def _start_all(self) -> int | None:
        """Start every worker and wait until each listens; if one cannot, stop them all:
        a bad port or address is a failure to report, not something to retry forever."""
        for slot in self.slots:
            self._start(slot)
        for slot in self.slots:
            assert slot.process is not None and slot.ready is not None
            wait([slot.ready, slot.process.sentinel])
            if not self._take_ready(slot):
                slot.process.join()
                code = slot.process.exitcode
                log.error("worker %d could not start (exit code %s)", slot.number, code)
                self._stop_all()
                return code if code and code > 0 else EXIT_USAGE
        return None

    def _take_ready(self, slot: _Slot) -> bool:
        """Read a worker's "listening" message (or the EOF of its death) once."""
        assert slot.ready is not None
        try:
            pid = slot.ready.recv()
        except EOFError:
            return False
        finally:
            slot.ready.close()
            slot.ready = None
        log.info("worker %d listening (pid %d)", slot.number, pid)
        return True

    def _watch(self) -> None:
        """Until SIGTERM or SIGINT: restart dead workers, forward SIGHUP."""
        while True:
            while self.signals:
                signum = self.signals.pop(0)
                if signum != signal.SIGHUP:
                    log.info("%s: draining the workers", signal.Signals(signum).name)
                    return
                log.info("SIGHUP: every worker reloads its policies")
                self._signal_all(signal.SIGHUP)
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._start(slot)
            restarts = [s.restart_at for s in self.slots if s.restart_at is not None]
            timeout = max(0.0, min(restarts) - now) if restarts else None
            waiting: dict[Connection | int, _Slot] = {}
            for slot in self.slots:
                if slot.process is not None:
                    waiting[slot.process.sentinel] = slot
                if slot.ready is not None:
                    waiting[slot.ready] = slot
            for ready in wait([*waiting, self.wake_read], timeout):
                if isinstance(ready, int):
                    self._died(waiting[ready])
                elif isinstance(ready, Connection):
                    self._take_ready(waiting[ready])
                else:
                    self._clear_wake()

    def _died(self, slot: _Slot) -> None:
        process = slot.process
        assert process is not None and process.pid is not None
        process.join()
        # its live gauges leave the sums
        mark_process_dead(process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        if time.monotonic() - slot.started >= _STABLE_SECONDS:
            slot.failures = 0
        delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2**slot.failures)
        slot.failures += 1
        slot.process, slot.restart_at = None, time.monotonic() + delay
        if slot.ready is not None:
            slot.ready.close()
            slot.ready = None
        log.error(
            "worker %d (pid %d) exited with code %s; restarting in %gs",
            slot.number,
            process.pid,
            process.exitcode,
            delay,
        )

    def _clear_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self.wake_read.recv(512):
                pass

    def _signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # it died just now: _died runs
                    os.kill(slot.process.pid, signum)

    def _stop_all(self) -> None:
        """SIGTERM every worker and wait for its drain; SIGKILL one that outlives it."""
        self._signal_all(signal.SIGTERM)
        deadline = (
            time.monotonic()
            + self.settings.drain_seconds
            + 2 * END_GRACE_SECONDS
            + _KILL_MARGIN_SECONDS
        )
        running = [s.process for s in self.slots if s.process is not None]
        while running and time.monotonic() < deadline:
            wait([p.sentinel for p in running], deadline - time.monotonic())
            running = [p for p in running if p.is_alive()]
        for process in running:
            log.error("worker pid %s did not drain in time; killing it", process.pid)
            process.kill()
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join()
            if slot.ready is not None:
                slot.ready.close()
