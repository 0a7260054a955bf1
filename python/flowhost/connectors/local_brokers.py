"""Private message brokers for development, tests and benchmarks: Debian's mosquitto and
rabbitmq-server, started the way a user starts them, each on free loopback ports with its config
and data under its own directory.

Nothing here touches the machine's own broker services: mosquitto gets a config file of its
own (`mosquitto -c`), RabbitMQ its node name, ports, Erlang port mapper (`ERL_EPMD_PORT`), cookie
(`HOME`) and directories through `RABBITMQ_*` variables, so that parallel test sessions do not
clash. `kill()` is SIGKILL (a crash: the broker keeps only what it had written), `start()` after
it brings the same broker back on the same ports with the same data.

A missing binary raises BrokerSupportMissingError naming the Debian package.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from flowhost.errors import BrokerError, BrokerSupportMissingError

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = shutil.which("epmd") or "/usr/bin/epmd"


def missing_binaries(*binaries: str) -> list[str]:
    return [b for b in binaries if not os.access(b, os.X_OK)]


def require(*binaries: str) -> None:
    missing = missing_binaries(*binaries)
    if missing:
        raise BrokerSupportMissingError(
            f"broker binaries missing: {', '.join(missing)} "
            "(apt-get install mosquitto rabbitmq-server)"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Poll until the port accepts connections (deadline-bounded); fails if the broker exits."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise BrokerError(f"broker exited ({process.returncode}) before listening:\n{text}")
        if time.monotonic() > deadline:
            raise BrokerError(f"broker not listening on {port} after {timeout}s")
        time.sleep(0.05)


class Mosquitto:
    """A private mosquitto: `mqtt://127.0.0.1:{port}`, persistent, saving after every change (so
    that a SIGKILL loses as little as mosquitto can)."""

    def __init__(
        self,
        root: Path,
        *,
        users: dict[str, str] | None = None,
        save_every_change: bool = True,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """`users`: name -> password (else anonymous); `tls`: (CA file, server certificate,
        its key) for a TLS-only listener."""
        require(MOSQUITTO)
        self.tls = tls is not None
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.users = users or {}
        self._process: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "user root",
            "persistence true",
            f"persistence_location {root}/",
            # Every change saved (a SIGKILL then loses next to nothing), which rewrites the
            # whole store each time: slow with many queued messages. Otherwise every 60 s.
            "autosave_on_changes true" if save_every_change else "autosave_on_changes false",
            "autosave_interval 1" if save_every_change else "autosave_interval 60",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            f"log_dest file {root / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if tls is not None:
            lines += [f"cafile {tls[0]}", f"certfile {tls[1]}", f"keyfile {tls[2]}"]
        if self.users:
            password_file = root / "passwords"
            password_file.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD, "-b", str(password_file), user, password], check=True
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        (root / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10) -> None:
        assert not self.running, "already running"
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.root / "mosquitto.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self._process, timeout, self.root / "mosquitto.log")

    def kill(self) -> None:
        """SIGKILL: a crash."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()

    def stop(self) -> None:
        if self.running:
            assert self._process is not None
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class RabbitMQ:
    """A private RabbitMQ node: `amqp://flowhost:flowhost@127.0.0.1:{port}/`. Boots in several
    seconds: start one per test session."""

    USER = "flowhost"
    PASSWORD = "flowhost-test"

    def __init__(self, root: Path) -> None:
        require(RABBITMQ_SERVER, EPMD)
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"flowhost-test-{os.getpid()}-{self.port}@localhost"
        self._process: subprocess.Popen[bytes] | None = None
        (root / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{self.port}",
                    f"default_user = {self.USER}",
                    f"default_pass = {self.PASSWORD}",
                    "loopback_users = none",
                    "log.console = false",
                    "log.file.level = warning",
                    # A loaded 2-core machine: the disk free default (50 MB) is fine, the
                    # memory watermark is not what these tests are about.
                    "vm_memory_high_watermark.relative = 0.8",
                ]
            )
            + "\n"
        )
        (root / "enabled_plugins").write_text("[].\n")
        (root / "home").mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"amqp://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _environment(self) -> dict[str, str]:
        root = self.root
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(root / "home"),  # the Erlang cookie lives there
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(root / "mnesia"),
            RABBITMQ_LOG_BASE=str(root / "log"),
            RABBITMQ_CONFIG_FILE=str(root / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(root / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(root / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(root / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(root / "rabbitmq.pid"),
        )
        return env

    def start(self, timeout: float = 90) -> None:
        assert not self.running, "already running"
        log = self.root / "server.out"
        with log.open("ab") as out:
            # Its own process group: `kill` takes the script, the Erlang VM and its helpers.
            self._process = subprocess.Popen(
                [RABBITMQ_SERVER],
                env=self._environment(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.port, self._process, timeout, log)

    def kill(self) -> None:
        """SIGKILL of the whole node: a crash."""
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()

    def stop(self) -> None:
        if self.running:
            self.kill()
        # The port mapper daemonizes out of the node's process group.
        subprocess.run(
            [EPMD, "-port", str(self.epmd_port), "-kill"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=10,
        )
