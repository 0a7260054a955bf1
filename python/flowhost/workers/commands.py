"""Which programs run a project's functions: interpreters, the Node binary, the SDK scripts."""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import sys
from pathlib import Path

from flowhost.errors import ConfigurationError
from flowhost.settings import Settings

# A source checkout keeps the SDKs beside the Python package (python/flowhost -> sdk-node,
# sdk-python/src).
_CHECKOUT_NODE_SDK = Path(__file__).resolve().parents[3] / "sdk-node"
_CHECKOUT_PYTHON_SDK = Path(__file__).resolve().parents[3] / "sdk-python" / "src"
VENV_DIR = ".venv"


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeCommands:
    python: str = sys.executable
    node: str = "node"
    node_args: tuple[str, ...] = ()
    node_sdk: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeCommands:
        return cls(
            python=settings.python_interpreter,
            node=settings.node,
            node_args=tuple(shlex.split(settings.node_args)),
        )

    def python_for(self, file: Path, root: Path) -> str:
        """The interpreter of a Python function file: the nearest `.venv` between the file and
        the functions directory, else the project's default."""
        return str(venv_root_python(file.parent, root) or self.python)

    def node_binary(self) -> str:
        found = shutil.which(self.node)
        if found is None:
            raise ConfigurationError(
                f"Node.js is needed for the JavaScript functions but {self.node!r} was not "
                "found; install it or set `node` in flowhost.toml"
            )
        return found

    def node_sdk_dir(self) -> Path:
        """Where `@flowhost/worker` lives: FLOWHOST_NODE_SDK, else the source checkout's."""
        configured = os.environ.get("FLOWHOST_NODE_SDK")
        sdk = Path(configured) if configured else (self.node_sdk or _CHECKOUT_NODE_SDK)
        if not (sdk / "src" / "runtime" / "child.js").is_file():
            raise ConfigurationError(
                f"the Node SDK @flowhost/worker was not found at {sdk}; "
                "set FLOWHOST_NODE_SDK to its directory"
            )
        return sdk

    def python_sdk_path(self) -> Path | None:
        """Where Python children import `flowhost_worker` from, ahead of what their interpreter
        has installed: FLOWHOST_PYTHON_SDK, else the source checkout's when the host runs from
        one (so that a checkout's children run its own SDK, as its Node children do), else
        None: the interpreter's installed flowhost-worker."""
        configured = os.environ.get("FLOWHOST_PYTHON_SDK")
        if configured:
            if not _is_python_sdk(Path(configured)):
                raise ConfigurationError(
                    f"FLOWHOST_PYTHON_SDK={configured} does not hold flowhost_worker; set it to "
                    "the directory that contains the package (sdk-python/src in a checkout)"
                )
            return Path(configured)
        return _CHECKOUT_PYTHON_SDK if _is_python_sdk(_CHECKOUT_PYTHON_SDK) else None

    def node_script(self, name: str) -> list[str]:
        """argv prefix that runs `src/runtime/<name>` of the Node SDK."""
        script = self.node_sdk_dir() / "src" / "runtime" / name
        return [self.node_binary(), *self.node_args, str(script)]


def venv_root_python(directory: Path, root: Path) -> Path | None:
    """`<dir>/.venv/bin/python` of the nearest directory from `directory` up to `root`."""
    directory, root = directory.resolve(), root.resolve()
    while directory.is_relative_to(root):
        candidate = directory / VENV_DIR / "bin" / "python"
        if candidate.exists():
            return candidate
        if directory == root:
            break
        directory = directory.parent
    return None


def _is_python_sdk(directory: Path) -> bool:
    return (directory / "flowhost_worker" / "child.py").is_file()
