"""What both services share: the "not installed" error, a free port, and cleanup after a crash."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

# Polls until this process's parent changes (the parent died and the watcher was reparented),
# then runs the cleanup command. Reading the parent pid from /proc also works when the dead
# parent is a zombie that nobody has reaped yet, where `kill -0` would still succeed.
_WATCH_PARENT = """
parent=$1; shift
while :; do
    read -r _ _ _ current _ < /proc/$$/stat
    [ "$current" = "$parent" ] || break
    sleep 1
done
eval "$1"
"""


class ServiceUnavailable(Exception):
    """A service cannot be started here because a program it needs is not installed."""


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class CleanupAfterExit:
    """Runs a shell command once this Python process is gone, however it ended.

    atexit handlers do not run when the test process is killed (SIGKILL, SIGTERM, os._exit);
    this detached watcher does, so a killed session leaves no server behind. `cancel()` it
    once the service was stopped the ordinary way.
    """

    def __init__(self, command: str, *, uid: int | None = None, gid: int | None = None) -> None:
        self._watcher: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["/bin/sh", "-c", _WATCH_PARENT, "cleanup-after-exit", str(os.getpid()), command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=None if uid is None else [],
        )

    def cancel(self) -> None:
        """Stop watching without running the command."""
        if self._watcher is None:
            return
        if self._watcher.poll() is None:
            # The watcher leads its own process group: this also ends its `sleep`.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._watcher.pid, signal.SIGKILL)
        self._watcher.wait()
        self._watcher = None
