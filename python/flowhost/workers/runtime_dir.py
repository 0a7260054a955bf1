"""The private directory that holds the host's `ipc://` sockets."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# A unix socket path holds at most 107 bytes; "/<runtime>.sock" must still fit.
MAX_DIRECTORY_LENGTH = 90


class RuntimeDirectory:
    """A fresh 0700 directory under $XDG_RUNTIME_DIR (or the temp dir): only the host's user can
    connect to the sockets inside. Removed, sockets included, by `remove()`."""

    def __init__(self) -> None:
        base = os.environ.get("XDG_RUNTIME_DIR")
        if not base or not os.access(base, os.W_OK) or len(base) > MAX_DIRECTORY_LENGTH - 12:
            base = tempfile.gettempdir()
        if len(base) > MAX_DIRECTORY_LENGTH - 12:
            base = "/tmp"
        self.path = Path(tempfile.mkdtemp(prefix="flowhost-", dir=base))
        os.chmod(self.path, 0o700)

    def endpoint(self, runtime: str) -> str:
        return f"ipc://{self.path}/{runtime}.sock"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
