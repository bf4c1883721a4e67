"""Ctrl-C and SIGTERM that stop a run only where it can be resumed exactly.

The first signal only sets a flag; the engine looks at it at step boundaries (and
between evaluation batches) and stops there, after saving its progress. Raising from
the handler instead would abandon a forward pass or an optimizer step half done, and
a resumed run would count that batch twice. A second signal aborts at once.
"""
from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType

_FIRST = ("\nkitpose: stopping at the end of this step to save the progress "
          "(press Ctrl-C again to stop at once, losing the progress since the last checkpoint)\n")
_SECOND = "\nkitpose: stopping at once; progress since the last checkpoint is lost\n"


class GracefulStop:
    """Context manager: while active, SIGINT/SIGTERM set :attr:`requested` instead of raising."""

    signals = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, *, announce: bool = True) -> None:
        self.requested: int | None = None
        self.announce = announce
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            for number in self.signals:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.requested is not None:
            self._say(_SECOND)
            raise KeyboardInterrupt
        self.requested = number
        self._say(_FIRST)

    def _say(self, text: str) -> None:
        # os.write, not print: a handler that prints while the main thread is printing to the
        # same stream fails with a reentrant-call error
        if self.announce:
            try:
                os.write(2, text.encode())
            except OSError:
                pass


def ignore_interrupts_in_worker() -> None:
    """Data-loader workers leave Ctrl-C to the main process, which stops them in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
