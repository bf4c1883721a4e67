"""Keeping a monitor from ever disturbing the run it watches.

:func:`never_raises` wraps a monitor hook: an exception becomes one logged warning
per hook, never an error in the training loop. :class:`OnceWarner` says a thing
once, however often it happens. :class:`LatestJobs` runs slow work (drawing,
writing files) on one background thread, where a newer job of the same kind
replaces an older one still waiting, so a slow disk never piles up work.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class OnceWarner:
    """Log a warning the first time each key is seen."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> bool:
        """Warn with ``message`` unless ``key`` was warned about before; ``True`` when it warned."""
        with self._lock:
            if key in self.seen:
                return False
            self.seen.add(key)
        self.logger.warning(message)
        return True


def never_raises(hook: F) -> F:
    """Decorate a monitor method: exceptions are reported once (``self._warn``) and swallowed."""

    @functools.wraps(hook)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return hook(self, *args, **kwargs)
        except Exception as exc:  # a monitor must never stop the run
            warn = getattr(self, "_warn", None)
            message = (f"{type(self).__name__}.{hook.__name__} failed and is skipped: "
                       f"{type(exc).__name__}: {exc}")
            if warn is not None:
                warn(f"hook:{hook.__name__}", message)
            return None

    return guarded  # type: ignore[return-value]


class LatestJobs:
    """One daemon thread running jobs in submission order, the newest per key only."""

    def __init__(self, name: str, on_error: Callable[[str, BaseException], None]) -> None:
        self._jobs: dict[str, Callable[[], None]] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._on_error = on_error
        self._name = name
        self._thread: threading.Thread | None = None  # started by the first job

    def submit(self, key: str, job: Callable[[], None]) -> None:
        """Queue ``job``; it replaces a job of the same ``key`` that has not started."""
        with self._cond:
            if self._stopping:
                return
            self._jobs.pop(key, None)
            self._jobs[key] = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every queued job has run; ``False`` when ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float) -> bool:
        """Run what is queued (up to ``timeout`` seconds), then end the thread."""
        finished = self.drain(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=0.5 if finished else 0.0)
        return finished

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._stopping:
                    self._cond.wait()
                if not self._jobs:
                    return
                key = next(iter(self._jobs))
                job = self._jobs.pop(key)
                self._busy = True
            try:
                job()
            except Exception as exc:
                self._on_error(key, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
