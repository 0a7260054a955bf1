"""A child process as the host sees it: signals through a pidfd, its exit, its resource use."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import resource
import signal

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True, slots=True)
class ExitStatus:
    exit_code: int | None
    signal: int | None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """asyncio's convention: a negative return code is the killing signal."""
        return cls(None, -returncode) if returncode < 0 else cls(returncode, None)

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by signal {name}"
        return f"exit status {self.exit_code}"


class ChildProcess:
    """A started child. Signals go through a pidfd, so a pid reused after the child was reaped
    can never be hit; the child leads its own process group, which is signalled with it so
    that processes a handler started do not outlive it."""

    def __init__(self, pid: int, pidfd: int | None, exited: asyncio.Future[ExitStatus]) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self.exited = exited
        exited.add_done_callback(lambda _: self._close_pidfd())

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def send_signal(self, sig: int) -> None:
        if not self.alive:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        with contextlib.suppress(ProcessLookupError, OSError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def rss_bytes(self) -> int | None:
        """Resident memory now (None once the process is gone)."""
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * _PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return None

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        # After the command name: state is field 3, utime 14 and stime 15 (1-based).
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def limit_cpu(self, seconds: float) -> None:
        """At most `seconds` more CPU time: SIGXCPU at the soft limit, SIGKILL a second later."""
        soft = int(self.cpu_seconds() + seconds + 0.999)
        with contextlib.suppress(ProcessLookupError, OSError):
            resource.prlimit(self.pid, resource.RLIMIT_CPU, (soft, soft + 1))

    def limit_data(self, limit_bytes: int) -> None:
        """Cap the data segment (heap and private mappings): allocations beyond it fail."""
        with contextlib.suppress(ProcessLookupError, OSError, ValueError):
            resource.prlimit(self.pid, resource.RLIMIT_DATA, (limit_bytes, limit_bytes))

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None


def open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None
