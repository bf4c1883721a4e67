"""The visdom monitor against a real Visdom server started by `kitpose visdom`.

Each server is a subprocess on a free loopback port with its env folder in a temp
directory; fixtures wait until it answers and always stop it. What the monitor
sent is read back with visdom's own client (`get_window_data`, `win_exists`).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import kitpose
from kitpose.monitor import RunInfo, Snapshot

# MPII's 16 joints and limbs: realistic sizes for what the engine sends
SKELETON = ((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
            (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15))
DECODERS = ("decoders/argmax", "decoders/dark")
RUN_NAME, STAMP = "hrnet_dark", "20261121-101010"
ENV = f"{RUN_NAME}-{STAMP}"


# -- a real server ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VisdomServer:
    """`kitpose visdom` in a subprocess, stopped for sure by :meth:`stop`."""

    def __init__(self, port: int, env_path: Path, environ: dict[str, str] | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.port, self.env_path = port, env_path
        self.environ = {**os.environ, **(environ or {})}
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.log = env_path.parent / f"server-{port}.log"

    def start(self, timeout: float = 60.0) -> "VisdomServer":
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kitpose", "visdom", "--port", str(self.port),
                 "--env-path", str(self.env_path), *self.extra],
                stdout=out, stderr=subprocess.STDOUT, env=self.environ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"visdom server exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"visdom server not ready in {timeout} s: {self.log.read_text()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VisdomServer]:
    running = VisdomServer(free_port(), tmp_path_factory.mktemp("visdom") / "envs")
    try:
        yield running.start()
    finally:
        running.stop()


def reader(port: int, **login: str):
    import visdom

    return visdom.Visdom(server="http://127.0.0.1", port=port, use_incoming_socket=False,
                         raise_exceptions=True, **login)


def windows(port: int, env: str, **login: str) -> dict:
    return json.loads(reader(port, **login).get_window_data(env=env))


def traces(window: dict) -> dict[str, tuple[list[float], list[float]]]:
    """``{name: (xs, ys)}`` of a plot window, without the gaps a plot may hold (None)."""
    out = {}
    for trace in window["content"]["data"]:
        pairs = [(x, y) for x, y in zip(trace["x"], trace["y"]) if x is not None and y is not None]
        out[trace["name"]] = ([x for x, _ in pairs], [y for _, y in pairs])
    return out


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


# -- realistic hook data ------------------------------------------------------------------------
def run_info(root: Path, start_epoch: int = 0) -> RunInfo:
    run_dir = root / RUN_NAME / STAMP
    return RunInfo(name=f"{RUN_NAME}/{STAMP}", dir=run_dir, recipe={"kitpose": 1}, epochs=3,
                   steps_per_epoch=10, start_epoch=start_epoch,
                   joint_names=tuple(f"j{k}" for k in range(16)), skeleton=SKELETON)


def scalars(step: int) -> dict[str, float]:
    return {"loss": 2.0 / step, "loss_heatmap": 1.5 / step, "lr": 1e-3 * 0.95 ** step,
            "images_per_s": 150.0 + step}


def metrics(epoch: int) -> dict[str, dict[str, float]]:
    return {b: {"pckh@0.5": 0.5 + 0.1 * epoch + 0.05 * i, "rmse": 4.0 - epoch - 0.5 * i}
            for i, b in enumerate(DECODERS)}


def snapshot(seed: int = 0, n: int = 4, size: int = 64, joints: int = 16) -> Snapshot:
    rng = np.random.default_rng(seed)
    keypoints = rng.uniform(6, size - 6, (n, joints, 2)).astype(np.float32)
    visible = (rng.random((n, joints)) > 0.1).astype(np.float32)
    stride, h = 4, size // 4
    ys, xs = np.mgrid[0:h, 0:h].astype(np.float32)

    def heatmaps(points: np.ndarray) -> np.ndarray:
        centre = (points + 0.5) / stride - 0.5
        d2 = (xs - centre[..., 0, None, None]) ** 2 + (ys - centre[..., 1, None, None]) ** 2
        return np.exp(-d2 / (2 * 2.0 ** 2)).astype(np.float32)

    batch = {"image": rng.random((n, 3, size, size)).astype(np.float32) * 0.4, "keypoints": keypoints,
             "visible": visible, "heatmaps": heatmaps(keypoints + 1.0), "target": heatmaps(keypoints)}
    return Snapshot({b: {**batch, "pred_keypoints": keypoints + rng.normal(0, 1.5 + i, keypoints.shape).astype(np.float32)}
                     for i, b in enumerate(DECODERS)})


TABLE = "| decoder | pckh@0.5 | rmse |\n|---|---:|---:|\n| argmax | 0.81 | 1.50 |\n| dark | 0.87 | 1.10 |"


def drive(monitor, root: Path, steps=range(1, 31), epochs: bool = True) -> None:
    for step in steps:
        monitor.on_step(step, (step - 1) // 10, scalars(step))
        if epochs and step % 10 == 0:
            monitor.on_epoch(step // 10, metrics(step // 10), snapshot(step))


def visdom_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "kitpose.visdom" and r.levelno >= logging.WARNING]


def decode_image(window: dict) -> np.ndarray:
    src = window["content"]["src"]
    assert src.startswith("data:image/png;base64,")
    data = np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)  # BGR


# -- the tests ------------------------------------------------------------------------------------
def test_a_run_sends_its_plots(server: VisdomServer, tmp_path: Path) -> None:
    monitor = kitpose.build("monitor", "visdom", port=server.port, every=2, interval=0.2, samples=3)
    monitor.on_start(run_info(tmp_path))
    drive(monitor, tmp_path)
    monitor.on_end(metrics(3), TABLE)
    monitor.close()

    assert monitor.env_name == ENV
    vis = reader(server.port)
    for win in ("kitpose_loss", "kitpose_lr", "kitpose_throughput", "kitpose_val_pckh_0_5",
                "kitpose_val_rmse", "kitpose_input", "kitpose_target", "kitpose_heatmaps",
                "kitpose_skeletons", "kitpose_results", "kitpose_run"):
        assert vis.win_exists(win, env=ENV), win
    assert not vis.win_exists("kitpose_loss", env="main")

    wins = windows(server.port, ENV)
    loss = traces(wins["kitpose_loss"])
    assert set(loss) == {"loss", "loss_heatmap"}
    steps = list(range(1, 31, 2))  # every=2: one point per two steps
    assert loss["loss"][0] == steps
    assert loss["loss"][1] == pytest.approx([2.0 / s for s in steps])
    assert loss["loss_heatmap"][1] == pytest.approx([1.5 / s for s in steps])
    assert traces(wins["kitpose_lr"])["lr"][1] == pytest.approx([1e-3 * 0.95 ** s for s in steps])
    assert traces(wins["kitpose_throughput"])["images_per_s"][1] == pytest.approx([150.0 + s for s in steps])

    for metric, win in (("pckh@0.5", "kitpose_val_pckh_0_5"), ("rmse", "kitpose_val_rmse")):
        per_decoder = traces(wins[win])
        assert set(per_decoder) == {"argmax", "dark"}
        for i, branch in enumerate(DECODERS):
            name = branch.split("/")[1]
            assert per_decoder[name][0] == [1, 2, 3]
            assert per_decoder[name][1] == pytest.approx([metrics(e)[branch][metric] for e in (1, 2, 3)])

    skeletons = decode_image(wins["kitpose_skeletons"])
    b, g, r = (skeletons[..., c].astype(int) for c in range(3))
    red = (r > 180) & (g < 80) & (b < 80)
    cyan = (b > 180) & (g > 180) & (r < 80)
    assert red.sum() > 200 and cyan.sum() > 200  # both skeletons drawn
    assert skeletons.shape[0] > 3 * 64 and skeletons.shape[1] > 2 * 64  # 3 samples x 2 decoders, enlarged
    heat = decode_image(wins["kitpose_heatmaps"])
    assert heat.std() > 20

    results = wins["kitpose_results"]["content"]
    assert "<table" in results and "dark" in results and "0.87" in results
    # sized to show the whole table (no scroll bar hiding the last columns)
    assert wins["kitpose_results"]["width"] >= 140 + 110 * 2 and wins["kitpose_results"]["height"] >= 90 + 34 * 4
    # the epoch is said once, in the title, not again as a caption
    assert wins["kitpose_skeletons"]["title"] == "skeletons: predicted red, ground truth cyan (epoch 3)"
    assert not wins["kitpose_skeletons"].get("caption")
    # the learning rate's axis starts at 0 and ends just above its largest value
    low, high = wins["kitpose_lr"]["content"]["layout"]["yaxis"]["range"]
    assert low == 0.0 and 1e-3 * 0.95 < high < 1.2e-3
    assert (server.env_path / f"{ENV}.json").is_file()  # stored under the env folder


def test_a_short_real_run_sends_its_plots(server: VisdomServer, tmp_path: Path) -> None:
    from kitpose.engine import run_recipe

    recipe = Path(__file__).resolve().parent / "recipes" / "toy.yaml"
    run_dir = tmp_path / "toy" / "20261121-111111"
    out = run_recipe(str(recipe), [f"+monitors.visdom={{use: visdom, port: {server.port}, interval: 0.1}}",
                                   "+monitors.figures={use: figures}", "train.log_every=1"], run_dir=str(run_dir))
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    vals = [r for r in records if r["kind"] == "val"]
    assert len(steps) == 8 and len(vals) == 2

    wins = windows(server.port, "toy-20261121-111111")
    loss = traces(wins["kitpose_loss"])
    assert loss["loss"][0] == [r["step"] for r in steps]
    assert loss["loss"][1] == pytest.approx([r["loss"] for r in steps])
    assert traces(wins["kitpose_throughput"])["images_per_s"][1] == pytest.approx([r["images_per_s"] for r in steps])
    per_decoder = traces(wins["kitpose_val_EPE"])
    assert set(per_decoder) == set(out) == {"peak", "shifted"}
    for branch in out:
        assert per_decoder[branch][0] == [r["epoch"] for r in vals]
        assert per_decoder[branch][1] == pytest.approx([r["metrics"][branch]["EPE"] for r in vals])
    skeletons = decode_image(wins["kitpose_skeletons"])
    red, cyan = (np.asarray(m) for m in (
        (skeletons[..., 2] > 180) & (skeletons[..., 1] < 80) & (skeletons[..., 0] < 80),
        (skeletons[..., 0] > 180) & (skeletons[..., 1] > 180) & (skeletons[..., 2] < 80)))
    assert red.sum() > 50 and cyan.sum() > 50
    results = wins["kitpose_results"]["content"]
    assert "<table" in results and "shifted" in results and f"{out['peak']['EPE']:.4f}" in results
    for picture in ("predictions.png", "heatmaps.png", "curves.png"):
        assert (run_dir / picture).stat().st_size > 5000, picture


def test_a_resumed_run_continues_its_curves(server: VisdomServer, tmp_path: Path) -> None:
    first = kitpose.build("monitor", "visdom", port=server.port, env="resumed", interval=0.1)
    first.on_start(run_info(tmp_path))
    drive(first, tmp_path, range(1, 21), epochs=False)
    first.close()
    # the run resumes from its checkpoint at step 10 and repeats steps 11-20
    second = kitpose.build("monitor", "visdom", port=server.port, env="resumed", interval=0.1)
    second.on_start(run_info(tmp_path, start_epoch=1))
    for step in range(11, 31):
        second.on_step(step, 1, {"loss": 100.0 + step})
    second.close()
    curves = traces(windows(server.port, "resumed")["kitpose_loss"])
    assert curves["loss"][0] == list(range(1, 31))
    assert curves["loss"][1] == pytest.approx([2.0 / s for s in range(1, 11)] + [100.0 + s for s in range(11, 31)])
    assert curves["loss_heatmap"][0] == list(range(1, 21))  # not logged after resuming: kept as it was


def test_server_killed_mid_run_then_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kitpose.visdom")
    server = VisdomServer(free_port(), tmp_path / "envs")
    monitor = kitpose.build("monitor", "visdom", port=server.port, interval=0.1, timeout=2.0)
    try:
        server.start()
        monitor.on_start(run_info(tmp_path))
        drive(monitor, tmp_path, range(1, 11), epochs=False)
        assert monitor.flush(20)
        assert len(traces(windows(server.port, ENV)["kitpose_loss"])["loss"][0]) == 10

        server.kill()
        started = time.perf_counter()
        drive(monitor, tmp_path, range(11, 21), epochs=False)
        assert time.perf_counter() - started < 1.0  # recording only: hooks never wait for the server
        assert wait_for(lambda: visdom_warnings(caplog), 20)

        server.start()
        drive(monitor, tmp_path, range(21, 31), epochs=False)

        def complete() -> bool:
            try:
                xs = traces(windows(server.port, ENV)["kitpose_loss"])["loss"][0]
            except Exception:
                return False
            return xs == list(range(1, 31))

        assert wait_for(complete, 30), "monitoring did not resume with the whole curve"
        monitor.close()
    finally:
        monitor.close()
        server.stop()
    warned = visdom_warnings(caplog)
    assert len(warned) == 1 and "lost the Visdom server" in warned[0]
    assert any("is back" in r.getMessage() for r in caplog.records if r.name == "kitpose.visdom")


def test_login_credentials_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    secret = {"VISDOM_USERNAME": "ada", "VISDOM_PASSWORD": "s3cret-pw", "VISDOM_COOKIE": "0123456789abcdef",
              "HOME": str(tmp_path / "home")}
    server = VisdomServer(free_port(), tmp_path / "envs", environ=secret, extra=("--login",))
    try:
        server.start()
        for key in ("VISDOM_USERNAME", "VISDOM_PASSWORD"):
            monkeypatch.delenv(key, raising=False)
        anonymous = kitpose.build("monitor", "visdom", port=server.port, env="anonymous", interval=0.1,
                                  timeout=2.0)
        anonymous.on_start(run_info(tmp_path))
        drive(anonymous, tmp_path, range(1, 3), epochs=False)
        assert not anonymous.flush(10)
        anonymous.close()
        assert any("VISDOM_USERNAME" in w for w in visdom_warnings(caplog))

        monkeypatch.setenv("VISDOM_USERNAME", "ada")
        monkeypatch.setenv("VISDOM_PASSWORD", "s3cret-pw")
        monitor = kitpose.build("monitor", "visdom", port=server.port, interval=0.1, timeout=2.0)
        monitor.on_start(run_info(tmp_path))
        drive(monitor, tmp_path, range(1, 5), epochs=False)
        monitor.close()
        login = {"username": "ada", "password": "s3cret-pw"}
        assert traces(windows(server.port, ENV, **login)["kitpose_loss"])["loss"][0] == [1, 2, 3, 4]
    finally:
        server.stop()


def test_command_refuses_a_busy_port_and_a_foreign_host(server: VisdomServer, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from kitpose.cli import main

    assert main(["visdom", "--port", str(server.port), "--env-path", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"port {server.port} is not free" in err[0]
    assert main(["visdom", "--host", "10.1.2.3", "--env-path", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--host must be 127.0.0.1 or 0.0.0.0" in err[0]


def test_server_listens_on_loopback_only(server: VisdomServer) -> None:
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) == server.port:  # 0A: LISTEN
                listening.add(address)
    assert listening == {"0100007F"}  # 127.0.0.1 only, no 0.0.0.0 nor ::


# -- the page in a browser (slow: fetches the npm assets and starts Chromium) ------------------
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("the browser test needs Chromium: apt-get install chromium")


@pytest.mark.slow
def test_page_renders_a_plot_in_chromium(server: VisdomServer, tmp_path: Path) -> None:
    from kitpose.cli import main
    from kitpose_plugins.monitors.visdom.assets import missing_assets, visdom_static_dir

    assert main(["visdom", "--install-assets"]) == 0
    assert missing_assets() == []
    css = (visdom_static_dir() / "css" / "bootstrap.min.css").read_text()
    assert "../fonts/glyphicons-halflings-regular.woff2" in css
    assert (visdom_static_dir() / "fonts" / "glyphicons-halflings-regular.woff2").is_file()

    monitor = kitpose.build("monitor", "visdom", port=server.port, env="browser", interval=0.1)
    monitor.on_start(run_info(tmp_path))
    drive(monitor, tmp_path, range(1, 31), epochs=False)
    monitor.close()
    vis = reader(server.port)
    assert vis.win_exists("kitpose_loss", env="browser")

    shot = tmp_path / "visdom.png"
    profile = tempfile.mkdtemp(prefix="kitpose-chromium-")
    try:
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                        "--window-size=1400,1000", "--virtual-time-budget=15000",
                        f"--screenshot={shot}", f"http://127.0.0.1:{server.port}/env/browser"],
                       check=True, capture_output=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    keep = os.environ.get("KITPOSE_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
    page = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert page is not None and page.shape[0] >= 900
    # The plot area, below the toolbar, where the first pane (training loss) sits. A
    # rendered plot is a white pane with plotly's blue (#1f77b4) and orange (#ff7f0e)
    # traces; a blank page, or the page without its panes, is visdom's flat background.
    area = page[80:600, 0:700].astype(int)
    white = (area > 245).all(axis=2).mean()
    assert white > 0.3, "no white plot pane where the first plot should be"

    def near(bgr: tuple[int, int, int]) -> int:
        return int((np.linalg.norm(area - np.array(bgr), axis=2) < 40).sum())

    assert near((180, 119, 31)) > 100, "the blue 'loss' trace is not visible"
    assert near((14, 127, 255)) > 100, "the orange 'loss_heatmap' trace is not visible"


class Page:
    """A headless Chromium page driven over the DevTools protocol (websocket-client comes
    with visdom): where each Visdom window sits, read while the windows arrive."""

    BOXES = ("JSON.stringify([...document.querySelectorAll('.react-grid-item')].map(e => {"
             " const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }))")

    def __init__(self, url: str, width: int) -> None:
        import urllib.request

        import websocket

        self.profile = tempfile.mkdtemp(prefix="kitpose-chromium-")
        port = free_port()
        self.browser = subprocess.Popen(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={self.profile}", f"--remote-debugging-port={port}",
             f"--window-size={width},1000", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pages = wait_for(lambda: self._pages(urllib.request, port), timeout=60)
        assert pages, "Chromium's DevTools did not answer"
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], suppress_origin=True,
                                                  timeout=30)
        self.calls = 0
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1,
                  mobile=False)

    @staticmethod
    def _pages(request, port: int) -> list[dict]:
        try:
            with request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as answer:
                return [t for t in json.load(answer) if t.get("type") == "page"]
        except OSError:
            return []

    def call(self, method: str, **params) -> dict:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.calls:
                return message.get("result", {})

    def boxes(self) -> list[list[float]]:
        """Each window's [left, top, width, height] in CSS pixels."""
        return json.loads(self.call("Runtime.evaluate", expression=self.BOXES)["result"]["value"])

    def close(self) -> None:
        self.socket.close()
        self.browser.kill()
        self.browser.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


def overlaps(boxes: list[list[float]]) -> list[tuple[int, int]]:
    """Pairs of windows that cover each other by more than a 2 px border."""
    found = []
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        for j, (x2, y2, w2, h2) in enumerate(boxes[i + 1:], start=i + 1):
            if min(x1 + w1, x2 + w2) - max(x1, x2) > 2 and min(y1 + h1, y2 + h2) - max(y1, y2) > 2:
                found.append((i, j))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 1920])
def test_windows_never_overlap_while_a_run_draws_them(server: VisdomServer, tmp_path: Path, width: int) -> None:
    # the page is open before the run draws anything, as a user watching it live has it;
    # after every event the page is asked where each window sits
    from kitpose.cli import main

    assert main(["visdom", "--install-assets"]) == 0
    env = f"live{width}"
    monitor = kitpose.build("monitor", "visdom", port=server.port, env=env, interval=0.1)
    monitor.on_start(run_info(tmp_path))
    assert wait_for(lambda: reader(server.port).win_exists("kitpose_run", env=env))
    page = Page(f"http://127.0.0.1:{server.port}/env/{env}", width)
    seen, found = 0, []

    def look() -> None:
        nonlocal seen
        time.sleep(0.3)
        boxes = page.boxes()
        seen = max(seen, len(boxes))
        found.extend(overlaps(boxes))

    try:
        for step in range(1, 31):
            monitor.on_step(step, (step - 1) // 10, scalars(step))
            if step % 10 == 0:
                monitor.on_epoch(step // 10, metrics(step // 10), snapshot(step))
            look()
        monitor.on_end(metrics(3), TABLE)
        monitor.close()
        for _ in range(5):
            look()
    finally:
        page.close()
    assert seen >= 11  # run, loss, lr, throughput, 2 metrics, 4 pictures, results
    assert found == [], f"windows overlapped at {width} px: {sorted(set(found))}"
