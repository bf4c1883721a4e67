"""Sending to Visdom on a background thread, so that training never waits for it.

The training thread only *records*: points go into a pending :class:`Curves`, and
image or text panels into a slot per window where the newest replaces an older one
not yet sent. Both are bounded (a trace thins itself past its cap; a window holds
one panel), so a slow or absent server costs a little memory, never time.

The sender thread keeps the whole history of every curve (at most ``points`` per
trace, thinned beyond) and redraws each window that changed, in one request per
window. It then rests for ``interval`` seconds, or longer when sending took long,
so that the sender and the server together stay under a few percent of one CPU
core whatever the length of the curves. Because every window is redrawn from
the history, a server that restarts empty gets everything back. It says once that
the server is missing or went away, and notes when it is back.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kitpose_plugins.monitors.figures.guard import OnceWarner
from kitpose_plugins.monitors.figures.series import Curves
from kitpose_plugins.monitors.visdom.panels import Panel

if TYPE_CHECKING:  # pragma: no cover
    from kitpose_plugins.monitors.visdom.client import Client

log = logging.getLogger("kitpose.visdom")

_RETRY_FIRST, _RETRY_MAX = 0.5, 5.0
#: rest at least this many times as long as the last round of sending took
_REST_FACTOR = 30.0
#: points per trace kept for the plots (beyond, a trace keeps every second point)
POINTS = 2000


class Sender:
    """The background sender of one run's plots to one Visdom env."""

    def __init__(self, connect: Callable[[], "Client"], env: str, address: str, *, interval: float = 1.0,
                 log_loss: bool = True, resume: bool = False, warn: OnceWarner | None = None,
                 render: Callable[[Any], list[Panel]] | None = None, points: int = POINTS) -> None:
        self._connect = connect
        self.env = env
        self.address = address
        self.interval = float(interval)
        self.log_loss = log_loss
        self._resume = resume  # continue the curves already in the env
        self._warn = warn or OnceWarner(log)
        self._render = render
        self._cond = threading.Condition()
        self._pending = Curves(cap=points)
        self._slots: dict[str, Any] = {}  # key -> Panel, or an object that ``render`` draws
        self._save = False
        self._stopping = False
        self._hurry = False  # flush() asks the sender to skip its rest
        self._busy = False
        self._idle = False  # the sender waits for work: only then does recording wake it
        # sender thread only:
        self._history = Curves(cap=points)
        self._shown: dict[str, Panel] = {}  # what each image or text window shows
        self._dirty: set[str] = set()  # curve panels to redraw
        self._redraw_all = False
        self._client: "Client | None" = None
        self._ever_connected = False
        self.connected = False
        self.failures = 0
        self._thread = threading.Thread(target=self._loop, name=f"kitpose-visdom-{env}", daemon=True)
        self._thread.start()

    # -- called from the training thread (cheap, never blocks on the network) ------------------
    def add_step(self, step: int, scalars: Mapping[str, float]) -> None:
        with self._cond:
            self._pending.add_step(step, scalars)
            self._wake()

    def add_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        with self._cond:
            self._pending.add_epoch(epoch, metrics)
            self._save = True
            self._wake()

    def show(self, key: str, item: Any) -> None:
        """Queue a :class:`Panel` (or an object for ``render``) under ``key``; newer replaces older."""
        with self._cond:
            self._slots.pop(key, None)
            self._slots[key] = item
            self._wake()

    def _wake(self) -> None:
        # Called with the lock held. A resting sender is not woken: it would only go
        # back to sleep, and a thread switch per training step is not free.
        if self._idle:
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything recorded so far is sent; ``False`` if not sent in ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            while self._busy or self._has_work():
                left = deadline - time.monotonic()
                if left <= 0 or (not self.connected and not self._busy and self.failures):
                    return False
                self._cond.wait(min(left, 0.05))
        return self.connected

    def close(self, timeout: float) -> bool:
        """Send what is left (if the server is there), store the env, and stop within ``timeout`` s."""
        with self._cond:
            self._stopping = True
            self._save = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the sender thread -------------------------------------------------------------------
    def _has_work(self) -> bool:
        return bool(self._pending) or bool(self._slots)

    def _loop(self) -> None:
        retry = _RETRY_FIRST
        while True:
            with self._cond:
                self._idle = True
                while not self._stopping and not self._has_work() and not self._save:
                    self._cond.wait()
                self._idle = False
                self._busy, self._hurry = True, False
            started = time.monotonic()
            try:
                if self._client is None:
                    self._client = self._try_connect()
                if self._client is not None:
                    self._cycle()
                    retry = _RETRY_FIRST
            except Exception as exc:  # the thread must not die: report once, carry on as if offline
                self._client, self.connected = None, False
                self.failures += 1
                self._warn(f"sender:{type(exc).__name__}",
                           f"visdom: the sender failed and retries: {type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            took = time.monotonic() - started
            with self._cond:
                if self._stopping and (self._client is None or not self._has_work()):
                    return  # done, or the server is away: never hold up the end of a run
                if self._stopping:
                    continue
                if self._client is None:
                    rest, retry = retry, min(retry * 2, _RETRY_MAX)
                else:
                    rest = max(self.interval, _REST_FACTOR * took)
                deadline = time.monotonic() + rest
                while not self._stopping and not self._hurry:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)

    def _try_connect(self) -> "Client | None":
        from kitpose_plugins.monitors.visdom.client import Unreachable, read_curves  # visdom loads here

        try:
            client = self._connect()
        except Exception as exc:  # Unreachable, or a client that cannot even be set up
            reason = str(exc) if isinstance(exc, Unreachable) else f"{type(exc).__name__}: {exc}"
            self._lost(f"lost the Visdom server at {self.address} ({reason})" if self._ever_connected
                       else f"no Visdom server at {self.address} ({reason})")
            return None
        if self._resume and not self._ever_connected:
            try:
                earlier = read_curves(client, self.env, self._history.cap)
                earlier.merge(self._history)
                self._history = earlier
            except Exception as exc:  # the run goes on; its earlier curves are just not continued
                self._warn("resume", f"visdom: cannot read the curves already in env '{self.env}': "
                                     f"{type(exc).__name__}: {exc}")
        if self._ever_connected:
            log.info("visdom: the server at %s is back; redrawing env '%s'", self.address, self.env)
        else:
            log.info("visdom: plotting to %s/env/%s", self.address, self.env)
            print(f"kitpose: visdom: watch this run at {self.address}/env/{self.env}", file=sys.stderr, flush=True)
        self._ever_connected = True
        self._redraw_all = True
        self.connected = True
        return client

    def _lost(self, what: str) -> None:
        self.connected = False
        self.failures += 1
        self._client = None
        self._warn("server", f"visdom: {what}; training goes on and the plots follow when the server is "
                             f"up (start one with: kitpose visdom)")

    def _cycle(self) -> None:
        """Redraw what changed; after a reconnection, everything."""
        from kitpose_plugins.monitors.visdom.client import Unreachable, save_env, send_curves, send_panel

        with self._cond:
            fresh, self._pending = self._pending, Curves(cap=self._history.cap)
            slots, self._slots = self._slots, {}
            save, self._save = self._save or self._stopping, False
        self._history.merge(fresh)
        self._dirty.update(fresh.panels)
        new_panels: list[Panel] = []
        for key, item in slots.items():
            new_panels.extend([item] if isinstance(item, Panel) else self._rendered(key, item))
        for panel in new_panels:
            self._shown[panel.win] = panel
        if self._redraw_all:
            self._dirty.update(self._history.panels)
            new_panels = list(self._shown.values())
        client = self._client
        assert client is not None
        try:
            for name in sorted(self._dirty):
                self._each(name, send_curves, client, self.env, name, self._history.panels[name],
                           log_loss=self.log_loss)
                self._dirty.discard(name)  # sent, or refused: new points mark it dirty again
            for panel in new_panels:
                self._each(panel.win, send_panel, client, self.env, panel)
            self._redraw_all = False
            if save:
                self._each("save", save_env, client, self.env)
        except Unreachable as exc:
            self._lost(f"lost the Visdom server at {self.address} ({exc})")

    def _each(self, window: str, send: Any, *args: Any, **kwargs: Any) -> None:
        """One window's send: a lost server propagates; anything else (odd data, a bug) is
        said once per window and kind of error, and the other windows still go out."""
        from kitpose_plugins.monitors.visdom.client import Unreachable

        try:
            send(*args, **kwargs)
        except Unreachable:
            raise
        except Exception as exc:
            self._warn(f"send:{window}:{type(exc).__name__}",
                       f"visdom: window '{window}' could not be sent: {type(exc).__name__}: {exc}")

    def _rendered(self, key: str, item: Any) -> list[Panel]:
        if self._render is None:
            return []
        try:
            return list(self._render(item))
        except Exception as exc:
            self._warn(f"render:{key}", f"visdom: cannot draw the {key} panels: {type(exc).__name__}: {exc}")
            return []
