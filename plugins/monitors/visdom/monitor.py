"""The ``visdom`` monitor: a live dashboard of a run in a Visdom server.

One Visdom env per run, named after the run (``<recipe>-<time>``). Windows:

- ``training loss`` (one trace per loss part), ``learning rate``, ``throughput``
  over steps, at most one point per ``every`` training steps;
- ``validation <metric>`` with one trace per decoder, over epochs;
- with ``images: true``, after each validation: the input images, ground-truth and
  predicted heatmaps, and skeletons (predicted red, ground truth cyan, one column
  per decoder) drawn with OpenCV; ``show`` names the tensors drawn, as for ``figures``;
- a card describing the run, and at the end the results table.

Everything is sent by a background thread (:mod:`kitpose_plugins.monitors.visdom.sender`);
hooks only record. Credentials for a server with login come from the environment
(``VISDOM_USERNAME``, ``VISDOM_PASSWORD``), never from the recipe.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit
from pathlib import Path
from typing import Any

import numpy as np

from kitpose.errors import ParameterError
from kitpose.monitor import Monitor, RunInfo, Snapshot

from kitpose_plugins.monitors.figures.guard import OnceWarner, never_raises
from kitpose_plugins.monitors.figures.series import StepFilter
from kitpose_plugins.monitors.figures.show import show_names

log = logging.getLogger("kitpose.visdom")

#: where the credentials for a server with login come from (never from the recipe)
USERNAME_ENV, PASSWORD_ENV = "VISDOM_USERNAME", "VISDOM_PASSWORD"

_PANEL_TITLES = {"input": "validation images", "target": "ground-truth heatmaps",
                 "heatmaps": "predicted heatmaps", "skeletons": "skeletons: predicted red, ground truth cyan"}


def env_name(run: RunInfo) -> str:
    """The Visdom env of a run: its name and its time folder, e.g. ``hrnet_dark-20261121-101010``."""
    name = str(run.name)
    stamp = Path(run.dir).name if run.dir else ""
    if stamp and stamp not in name:
        name = f"{name}-{stamp}"
    return re.sub(r"[^A-Za-z0-9_.@-]+", "-", name).strip("-.") or "kitpose"


def _address(server: str, port: int) -> str:
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "http://" + server
    return f"{server}:{port}"


def _has_credentials(server: str) -> bool:
    """Whether a server URL carries ``user@`` or ``user:password@`` (``http://me:pw@host``)."""
    return urlsplit(_with_scheme(server)).username is not None


def _without_credentials(server: str) -> str:
    """The server URL with any ``user:password@`` taken out (safe to print)."""
    scheme, _, rest = _with_scheme(server).partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"


def _with_scheme(server: str) -> str:
    server = server.strip()
    return server if "://" in server else "http://" + server


def _copy_snapshot(snapshot: Snapshot, samples: int, names: Iterable[str]) -> Snapshot:
    """The first ``samples`` samples of the tensors ``names``, copied: the engine may reuse
    its arrays, and the sender thread needs nothing else."""
    wanted = set(names)
    return Snapshot({branch: {name: np.array(np.asarray(value)[:samples]) for name, value in env.items()
                              if name in wanted}
                     for branch, env in snapshot.tensors.items()})


class VisdomMonitor(Monitor):
    """Live curves, metrics per decoder, image panels and results in Visdom (login from VISDOM_USERNAME/_PASSWORD).

    ``server`` is a host or URL without credentials: a recipe is saved with the run, so a
    login comes from the environment variables ``VISDOM_USERNAME`` and ``VISDOM_PASSWORD``.
    """

    def __init__(self, server: str = "http://127.0.0.1", port: int = 8097, env: str | None = None,
                 every: int = 1, images: bool = True, samples: int = 4, interval: float = 1.0,
                 timeout: float = 5.0, base_url: str = "/", log_loss: bool = True,
                 show: dict[str, str | None] | None = None) -> None:
        if not isinstance(server, str) or not server.strip():
            raise ParameterError(f"visdom: server must be a host or URL, got {server!r}",
                                 hint="e.g. server: http://127.0.0.1")
        if _has_credentials(server):
            raise ParameterError(f"visdom: server must not hold a user name or password "
                                 f"({_without_credentials(server)} with them removed): the recipe is "
                                 "saved with the run",
                                 hint=f"set {USERNAME_ENV} and {PASSWORD_ENV} in the environment instead; "
                                      "the monitor logs in with them")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ParameterError(f"visdom: port must be a number from 1 to 65535, got {port!r}")
        if env is not None and (not isinstance(env, str) or not re.fullmatch(r"[A-Za-z0-9_.@-]+", env)):
            raise ParameterError(f"visdom: env must use letters, digits and _ . @ -, got {env!r}",
                                 hint="or leave env out to name it after the run")
        for key, value, low in (("every", every, 1), ("samples", samples, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ParameterError(f"visdom: {key} must be a whole number >= {low}, got {value!r}")
        for key, value in (("interval", interval), ("timeout", timeout)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ParameterError(f"visdom: {key} must be a positive number of seconds, got {value!r}")
        if not isinstance(base_url, str) or not base_url.startswith("/"):
            raise ParameterError(f"visdom: base_url must start with '/', got {base_url!r}")
        self.server = server.strip().rstrip("/")
        self.port = port
        self.env = env
        self.every = every
        self._keep = StepFilter(every)
        self.images = bool(images)
        self.samples = samples
        self.interval = float(interval)
        self.timeout = float(timeout)
        self.base_url = base_url.rstrip("/") or "/"
        self.log_loss = bool(log_loss)
        self.show = show_names("visdom", show)
        self.address = _address(self.server, self.port)
        self._warn = OnceWarner(log)
        self._sender: Any = None
        self._env: str | None = None
        self._skeleton: tuple[tuple[int, int], ...] = ()

    # -- hooks (record only; the sender thread talks to the server) ---------------------------
    @never_raises
    def on_start(self, run: RunInfo) -> None:
        from kitpose_plugins.monitors.visdom.sender import Sender
        from kitpose_plugins.monitors.visdom.text import definition_list

        if self._sender is not None:
            return
        env = self._env = self.env or env_name(run)
        self._skeleton = tuple(run.skeleton or ())
        self._sender = Sender(self._connector(env), env, self.address, interval=self.interval,
                              log_loss=self.log_loss, resume=run.start_epoch > 0, warn=self._warn,
                              render=self._render)
        card = definition_list(str(run.name), [
            ("run directory", run.dir), ("epochs", run.epochs), ("steps per epoch", run.steps_per_epoch),
            ("starts at epoch", run.start_epoch), ("joints", len(run.joint_names) or "-")])
        self._show_text("run", "run", card)

    @never_raises
    def on_step(self, step: int, epoch: int, scalars: Mapping[str, float]) -> None:
        if self._sender is not None and self._keep(step):
            self._sender.add_step(step, {str(k): float(v) for k, v in scalars.items()})

    @never_raises
    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        if self._sender is None:
            return
        self._sender.add_epoch(epoch, {str(b): {str(m): float(v) for m, v in row.items()}
                                       for b, row in metrics.items()})
        if self.images and snapshot is not None:
            self._sender.show("images", (epoch, _copy_snapshot(snapshot, self.samples, self._drawn())))

    @never_raises
    def on_end(self, results: Mapping[str, Mapping[str, float]], table: str) -> None:
        from kitpose_plugins.monitors.visdom.text import markdown_to_html

        if not table:
            metrics = sorted({m for row in results.values() for m in row})
            lines = ["| decoder | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
            lines += [f"| {b} | " + " | ".join(f"{row.get(m, float('nan')):.4g}" for m in metrics) + " |"
                      for b, row in results.items()]
            table = "\n".join(lines)
        rows = [line for line in table.splitlines() if line.startswith("|")]
        columns = max((line.count("|") - 1 for line in rows), default=1)
        size = (min(1200, 140 + 110 * columns), min(900, 90 + 34 * len(rows)))  # the whole table, no scroll bar
        self._show_text("results", "test results", markdown_to_html(table), size)

    @never_raises
    def close(self) -> None:
        if self._sender is not None:
            sender, self._sender = self._sender, None
            if not sender.close(timeout=2 * self.timeout + 1.0):
                self._warn("close", f"visdom: the last plots were not sent to {self.address} in time")

    # -- helpers -------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was recorded is on the server (tests, notebooks); ``False`` if not."""
        return bool(self._sender is not None and self._sender.flush(timeout))

    @property
    def env_name(self) -> str | None:
        """The env this run plots to (known after ``on_start``)."""
        return self._env

    def _connector(self, env: str) -> Any:
        username, password = os.environ.get(USERNAME_ENV) or None, os.environ.get(PASSWORD_ENV) or None
        if bool(username) != bool(password):
            self._warn("credentials", f"visdom: {USERNAME_ENV} and {PASSWORD_ENV} must be set together; "
                                      "connecting without login")
            username = password = None

        def connect() -> Any:
            from kitpose_plugins.monitors.visdom.client import Client  # on the sender thread

            return Client(self.server, self.port, env, base_url=self.base_url, timeout=self.timeout,
                          username=username, password=password)

        return connect

    def _show_text(self, key: str, title: str, html: str, size: tuple[int, int] | None = None) -> None:
        from kitpose_plugins.monitors.visdom.panels import Panel, window_id

        if self._sender is not None:
            self._sender.show(key, Panel(window_id(key), "text", html, title, size=size))

    def _drawn(self) -> list[str]:
        """The tensors the image panels draw: the batch's own and those ``show`` names."""
        return ["image", "keypoints", "visible", *(name for name in self.show.values() if name)]

    def _render(self, item: tuple[int, Snapshot]) -> list[Any]:
        """Draw a snapshot's image panels (runs on the sender thread)."""
        from kitpose_plugins.monitors.figures.draw import limit_size, snapshot_panels, to_rgb
        from kitpose_plugins.monitors.visdom.panels import Panel, window_id

        epoch, snapshot = item
        panels = snapshot_panels(snapshot, self.samples, self._skeleton, self.show)
        return [Panel(window_id(name), "image", to_rgb(limit_size(image, 960)), _PANEL_TITLES[name],
                      caption=f"epoch {epoch}")
                for name, image in panels.items()]
