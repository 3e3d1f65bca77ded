"""SIGTERM (how SLURM, Kubernetes and ``timeout`` pre-empt a job) that always ends the process in bounded time.

Lightning's own SIGTERM handler runs a ``dist.broadcast`` *inside the signal handler* and only sets a flag that the
fit loop reads before the next batch. A Python signal handler runs in the main thread between bytecodes, so while a
rank is blocked in a collective that never completes (a dead peer) the handler never runs and the process hangs until
SIGKILL. ``SigtermWatchdog`` replaces that handler for the duration of training with one that only raises Lightning's
flag (the fit loop then broadcasts it from rank 0 before the next batch, every rank raises ``SIGTERMException`` at the
same batch and the checkpoint callback saves on all of them), and it watches the signal from a helper thread through
``signal.set_wakeup_fd``, whose C-level write happens even while the main thread is blocked: if the process has not
ended ``timeout`` seconds after the signal, it prints one line and exits with status 143 (128 + SIGTERM) without a
new checkpoint — the last complete one stays (checkpoints are written atomically).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import _compat


class SigtermWatchdog:
    """Install with ``install()`` in the main thread at the start of training, ``uninstall()`` at its end.

    Args:
        trainer: the Lightning trainer whose SIGTERM flag the handler raises.
        timeout: seconds between SIGTERM and a forced exit when training has not stopped by itself.
        describe: called (in the watchdog thread) for the text of the exit line, e.g. where the last checkpoint is.
    """

    def __init__(self, trainer: Any, timeout: float, describe: Callable[[], str] | None = None) -> None:
        self.trainer, self.timeout, self.describe = trainer, timeout, describe
        self._previous_handler: Any = None
        self._previous_fd: int | None = None
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._installed = False

    def install(self) -> bool:
        """Replaces the SIGTERM handler and starts watching; False (doing nothing) outside the main thread."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            return False
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._previous_handler = signal.signal(signal.SIGTERM, self._handler)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(reader,), name="gan-modules-sigterm-watchdog", daemon=True).start()
        self._installed = True
        return True

    def uninstall(self) -> None:
        """Restores the previous handler and wake-up fd (idempotent)."""
        if not self._installed:
            return
        self._installed = False
        signal.set_wakeup_fd(self._previous_fd if self._previous_fd is not None else -1)
        signal.signal(signal.SIGTERM, self._previous_handler)
        _, writer = self._sockets
        writer.close()  # the watchdog thread's recv returns b"" and the thread ends
        self._sockets = None

    def _handler(self, signum: int, frame: Any) -> None:
        """Runs in the main thread when it is not blocked: raise Lightning's flag (once, also for the other ranks
        that Lightning's launcher started)."""
        first = not getattr(self.trainer, "received_sigterm", False)
        _compat.set_received_sigterm(self.trainer)
        launcher = _compat.strategy_launcher(self.trainer)
        if first and launcher is not None:
            launcher.kill(signum)

    def _watch(self, reader: socket.socket) -> None:
        try:
            while True:
                data = reader.recv(64)
                if not data:
                    return
                if signal.SIGTERM in data:
                    break
        except OSError:
            return
        finally:
            reader.close()
        threading.Event().wait(self.timeout)
        where = self.describe() if self.describe is not None else ""
        line = (f"gan-modules: SIGTERM: training did not stop within {self.timeout:g} s (a rank is probably stuck in a "
                f"collective); exiting without a new checkpoint{where}\n")
        try:  # never block on a full stderr pipe: the exit must happen
            os.set_blocking(sys.stderr.fileno(), False)
            os.write(sys.stderr.fileno(), line.encode())
        except (OSError, ValueError):
            pass
        os._exit(128 + signal.SIGTERM)


__all__ = ["SigtermWatchdog"]
