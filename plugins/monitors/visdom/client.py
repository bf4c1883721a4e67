"""Talking to a Visdom server: a client that fails fast and quietly, and the panel calls.

:class:`Client` is visdom's own client with three changes a training run needs:
every request has a time limit; a failure raises :class:`Unreachable` with a short
reason instead of printing a traceback; and the optional login uses credentials
from the environment (``VISDOM_USERNAME``, ``VISDOM_PASSWORD``), never from a recipe.

The ``send_*`` functions draw kitpose's panels with the client's public calls;
:func:`read_curves` reads back what an earlier part of a resumed run drew.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import requests
import visdom

from kitpose_plugins.monitors.figures.series import LOSS, LR, METRIC, Curves, Series, panel_from_title, title_of, x_label_of
from kitpose_plugins.monitors.visdom.panels import Panel, window_id

USERNAME_ENV = "VISDOM_USERNAME"
PASSWORD_ENV = "VISDOM_PASSWORD"

# visdom's client logs these on every connection; they say nothing to a kitpose user
_NOISE = ("Without the incoming socket", "Setting up a new session")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_NOISE)


logging.getLogger("visdom").addFilter(_DropNoise())


class Unreachable(Exception):
    """The server did not take a request; the message says why, in a few words."""


def _reason(exc: requests.RequestException, timeout: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return type(exc).__name__


class Client(visdom.Visdom):
    """visdom's client with a time limit per request and quiet, explicit failures."""

    def __init__(self, server: str, port: int, env: str, *, base_url: str = "/", timeout: float = 5.0,
                 username: str | None = None, password: str | None = None) -> None:
        self._timeout = float(timeout)
        self._login = username
        super().__init__(server=server, port=port, env=env, base_url=base_url, raise_exceptions=True,
                         use_incoming_socket=False, username=username, password=password)

    @property
    def session(self) -> requests.Session:
        """A requests session, logged in when a username is set."""
        if self._session is None:
            session = requests.Session()
            if self._login:
                url = f"{self.server}:{self.port}{self.base_url}"
                try:
                    answer = session.post(url, json={"username": self._login, "password": self.password},
                                          timeout=self._timeout)
                except requests.RequestException as exc:
                    raise Unreachable(_reason(exc, self._timeout)) from None
                if answer.status_code != requests.codes.ok:
                    raise Unreachable(f"login as '{self._login}' refused (HTTP {answer.status_code}); "
                                      f"check {USERNAME_ENV} and {PASSWORD_ENV}")
            self._session = session
        return self._session

    def _handle_post(self, url: str, data: Any = None) -> str:
        try:
            answer = self.session.post(url, data=data if data is not None else {}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise Unreachable(_reason(exc, self._timeout)) from None
        if answer.status_code != requests.codes.ok:
            hint = (f"; does the server need a login? set {USERNAME_ENV} and {PASSWORD_ENV}"
                    if answer.status_code in (400, 401, 403) and not self._login else "")
            raise Unreachable(f"HTTP {answer.status_code} from {url}{hint}")
        return answer.text


def _line_opts(panel: str, names: list[str], log_loss: bool, ys: np.ndarray | None = None) -> dict[str, Any]:
    opts: dict[str, Any] = {"title": title_of(panel), "xlabel": x_label_of(panel), "showlegend": True,
                            "legend": names, "markers": panel.startswith(METRIC), "markersize": 6}
    if panel == LOSS and log_loss:
        opts["ytype"] = "log"
    elif ys is not None:
        opts.update(_y_range(panel, ys))
    return opts


def _y_range(panel: str, ys: np.ndarray) -> dict[str, float]:
    """A y axis that reads right: the learning rate from 0, and a constant curve around its
    value (plotly would put 0.002 on a -1..1 axis, where it reads as 0)."""
    finite = ys[np.isfinite(ys)]
    if not finite.size:
        return {}
    low, high = float(finite.min()), float(finite.max())
    if panel == LR or (low == high and low >= 0):
        top = high * 1.1 if high > 0 else 1.0
        return {"ytickmin": 0.0, "ytickmax": top}
    if low == high:
        return {"ytickmin": low * 1.1, "ytickmax": 0.0}
    return {}


def send_curves(client: Client, env: str, panel: str, traces: Mapping[str, Series], *,
                log_loss: bool = True) -> None:
    """Draw a panel's traces, replacing the window, in one request.

    The whole window is sent each time, not appended to: visdom's server diffs a
    window on every append, at a cost that grows with its length, while a
    replacement costs it almost nothing. Traces of different lengths are padded
    with NaN, which the plot leaves out.
    """
    names = sorted(name for name, series in traces.items() if len(series))
    if not names:
        return
    length = max(len(traces[name]) for name in names)
    xs = np.full((length, len(names)), np.nan)
    ys = np.full((length, len(names)), np.nan)
    for column, name in enumerate(names):
        series = traces[name]
        xs[: len(series), column] = series.xs
        ys[: len(series), column] = series.ys
    if len(names) == 1:
        xs, ys = xs[:, 0], ys[:, 0]
    client.line(Y=ys, X=xs, win=window_id(panel), env=env, opts=_line_opts(panel, names, log_loss, ys))


def read_curves(client: Client, env: str, cap: int) -> Curves:
    """The curves kitpose drew earlier in ``env`` (to continue them when a run resumes)."""
    curves = Curves(cap=cap)
    windows = json.loads(client.get_window_data(env=env) or "{}")
    for win, pane in windows.items():
        panel = panel_from_title(str(pane.get("title", "")))
        if not str(win).startswith("kitpose_") or pane.get("type") != "plot" or panel is None:
            continue
        for trace in pane.get("content", {}).get("data", []):
            for x, y in zip(trace.get("x") or [], trace.get("y") or []):
                if x is not None and y is not None:
                    curves.add(panel, str(trace.get("name")), x, y)
    return curves


def send_panel(client: Client, env: str, panel: Panel) -> None:
    """Show an image or text panel (replacing what the window showed)."""
    if panel.kind == "image":
        chw = np.ascontiguousarray(np.transpose(panel.content, (2, 0, 1)))
        title = f"{panel.title} ({panel.caption})" if panel.caption else panel.title  # said once, in the title
        client.image(chw, win=panel.win, env=env, opts={"title": title})
    else:
        size = {"width": panel.size[0], "height": panel.size[1]} if panel.size else {}
        client.text(panel.content, win=panel.win, env=env, opts={"title": panel.title, **size})


def save_env(client: Client, env: str) -> None:
    """Ask the server to store ``env`` in its env_path, so it outlives a restart."""
    client.save([env])
