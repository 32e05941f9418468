"""Process helpers for the rigs: free ports, readiness waits, managed subprocesses.

Every server a rig starts runs in its own process group (``start_new_session``) with
stdout and stderr captured to a log file, so that :meth:`ManagedProcess.stop` can kill
the whole group and a failed start can be reported with the tail of the log.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import TracebackType

    from typing_extensions import Self

LOCALHOST = "127.0.0.1"

#: Processes started by :class:`ManagedProcess` and not yet stopped; killed at exit.
_RUNNING: set[ManagedProcess] = set()

# A urllib opener that never goes through an HTTP proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StartupError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


def _port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """Return whether ``host:port`` can be bound right now (TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def untraced_environ() -> dict[str, str]:
    """This process's environment without coverage's subprocess variables.

    Under ``coverage run`` (``nox -s tests``, ``patch = ["subprocess"]``) a Python
    child started with it runs outside coverage: for servers that are not ours to
    measure (moto) and for runs timed against something else (the soaks' collector).
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS_")}


def untraced_executor(workers: int) -> ThreadPoolExecutor:
    """A thread pool whose threads run outside coverage's tracer.

    For what a rig does through a client (boto3, the Azure SDK, urllib), not through
    the code under test. Under ``coverage run`` on Python 3.11 a trace function makes
    every line of Python in the process 2 to 4 times slower, measured or not: thousands
    of client requests then spend most of their time in the tracer, and hold the GIL
    the tests' own threads need. Each worker clears its own trace function as it starts
    (``sys.settrace(None)``); the tracer of every other thread is left as it was.
    """
    return ThreadPoolExecutor(workers, initializer=sys.settrace, initargs=(None,))


def put_untraced(
    put: Callable[[str, bytes], object], items: Mapping[str, bytes], *, workers: int = 10
) -> None:
    """``put(key, data)`` for every item, from ``workers`` threads outside coverage."""
    with untraced_executor(workers) as pool:
        for future in [pool.submit(put, key, data) for key, data in items.items()]:
            future.result()


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that the kernel considers free right now."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """Return ``count`` distinct free TCP ports on ``host``.

    All sockets are held open until every port is chosen, so the ports are distinct.
    As with any free-port picking, another process may grab a port before it is used.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port_pairs(count: int, offset: int = 10000, host: str = LOCALHOST) -> list[int]:
    """Return ``count`` ports ``p`` such that ``p`` and ``p + offset`` are all free and distinct.

    Used for servers (SeaweedFS) whose gRPC port is by convention its HTTP port + 10000,
    where some component dials that conventional port whatever the flags say.
    """
    chosen: list[int] = []
    taken: set[int] = set()
    attempts = 0
    while len(chosen) < count:
        attempts += 1
        if attempts > 10_000:
            raise RuntimeError("could not find free port pairs")
        (port,) = free_ports(1, host)
        pair = port + offset
        if pair > 65535 or port in taken or pair in taken:
            continue
        if _port_is_free(pair, host):
            chosen.append(port)
            taken.update((port, pair))
    return chosen


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Return the HTTP status of a GET on ``url`` (any status, 4xx/5xx too), or None if down."""
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: ManagedProcess | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``predicate`` until it is true.

    Raises:
        StartupError: on timeout, or as soon as ``proc`` has exited; the message names
            ``what`` and includes the tail of the process log.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        if proc is not None and not proc.running:
            raise StartupError(
                f"{proc.name} exited with code {proc.returncode} while waiting for {what}\n"
                f"--- last lines of {proc.log_path} ---\n{proc.log_tail()}"
            )
        try:
            if predicate():
                return
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            tail = f"\n--- last lines of {proc.log_path} ---\n{proc.log_tail()}" if proc else ""
            cause = f" (last probe error: {last_exc!r})" if last_exc else ""
            raise StartupError(f"timed out after {timeout:.0f}s waiting for {what}{cause}{tail}")
        time.sleep(interval)


def wait_for_port(
    host: str, port: int, *, timeout: float = 30.0, proc: ManagedProcess | None = None
) -> None:
    """Wait until ``host:port`` accepts TCP connections (see :func:`wait_until`)."""
    wait_until(lambda: port_is_open(host, port), timeout=timeout, what=f"{host}:{port}", proc=proc)


def wait_for_http(
    url: str,
    *,
    timeout: float = 30.0,
    proc: ManagedProcess | None = None,
    expect: int | None = None,
) -> None:
    """Wait until ``url`` answers HTTP (with status ``expect`` when given, any status otherwise)."""

    def probe() -> bool:
        status = http_status(url)
        return status is not None and (expect is None or status == expect)

    wait_until(probe, timeout=timeout, what=url, proc=proc)


class ManagedProcess:
    """A subprocess in its own process group, with output captured to a log file.

    Use :meth:`start` (or the constructor plus ``with``), then :meth:`stop`, which kills
    the whole process group (SIGTERM, then SIGKILL after ``grace`` seconds). Processes
    still running when the interpreter exits are killed by an ``atexit`` hook.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.name = name or Path(self.argv[0]).name
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._own_log = log_path is None
        if log_path is None:
            fd, tmp = tempfile.mkstemp(prefix=f"rig-{self.name}-", suffix=".log")
            os.close(fd)
            log_path = tmp
        self.log_path = Path(log_path)
        self._popen: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> ManagedProcess:
        """Start the process (output appended to :attr:`log_path`) and return self."""
        if self._popen is not None and self._popen.poll() is None:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        _RUNNING.add(self)
        return self

    @property
    def pid(self) -> int | None:
        """The process id (also the process group id), or None before start."""
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        """Whether the process has been started and has not exited."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once exited, else None."""
        return self._popen.poll() if self._popen is not None else None

    def stop(self, grace: float = 10.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Safe to call more than once, and on a process that already exited (any children
        left in its group are killed too).
        """
        popen = self._popen
        if popen is None:
            return
        try:
            if popen.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    popen.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    popen.wait(timeout=10)
            # Leader gone: kill anything left in the group.
            self._signal_group(signal.SIGKILL)
        finally:
            _RUNNING.discard(self)

    def kill(self) -> None:
        """SIGKILL the process group at once and reap the leader."""
        self.stop(grace=0.0)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def group_pids(self) -> set[int]:
        """Return the pids of every live process in this process's group (Linux ``/proc``)."""
        if self._popen is None:
            return set()
        pgid = self._popen.pid
        pids: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            # fields: state, ppid, pgrp, ...
            if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
                pids.add(int(entry.name))
        return pids

    def listening_ports(self) -> set[int] | None:
        """Return the TCP ports the process group listens on, or None where ``/proc`` is absent.

        Used to make sure a port answering is really ours, not a leftover server's.
        """
        if not Path("/proc/net/tcp").exists():
            return None
        inodes: set[str] = set()
        for pid in self.group_pids():
            fd_dir = Path(f"/proc/{pid}/fd")
            try:
                fds = list(fd_dir.iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    target = str(fd.readlink())
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        ports: set[int] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                # local_address is "HEXIP:HEXPORT"; state 0A is LISTEN; inode is column 9.
                if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        return ports

    def owns_ports(self, ports: Iterable[int]) -> bool:
        """Return whether the process group listens on every port in ``ports``.

        True where this cannot be checked (no ``/proc``).
        """
        listening = self.listening_ports()
        return listening is None or set(ports) <= listening

    def cleanup_log(self) -> None:
        """Delete the log file if this object created it (keep a caller-chosen one)."""
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    # -- diagnostics -----------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the captured output."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "<no log>"
        text = data[-64 * 1024 :].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        if self._popen is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} running={self.running}>"


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    check: bool = False,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short command to completion, capturing text output (no shell).

    Raises:
        subprocess.CalledProcessError: when ``check`` and the exit code is not 0; its
            string form includes stdout and stderr.
    """
    result = subprocess.run(
        [str(a) for a in argv],
        env=dict(env) if env is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise CommandError(result)
    return result


class CommandError(subprocess.CalledProcessError):
    """A command failed; ``str()`` shows the command, exit code, stdout and stderr."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(result.returncode, result.args, result.stdout, result.stderr)

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited with {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


@atexit.register
def _kill_leftovers() -> None:
    """Kill every managed process still running when the interpreter exits."""
    for proc in list(_RUNNING):
        with contextlib.suppress(Exception):
            proc.stop(grace=2.0)
