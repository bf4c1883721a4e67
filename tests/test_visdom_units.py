"""The visdom plugin without a server: registration, recipe keys, absent or stuck servers, assets."""
from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import kitpose
from kitpose.errors import ParameterError
from kitpose.monitor import RunInfo, Snapshot


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_info(tmp_path: Path) -> RunInfo:
    return RunInfo(name="toy/20261121-090000", dir=tmp_path / "toy" / "20261121-090000", recipe={},
                   epochs=2, steps_per_epoch=50, skeleton=((0, 1), (1, 2)))


def tiny_snapshot() -> Snapshot:
    rng = np.random.default_rng(1)
    kp = rng.uniform(4, 28, (2, 3, 2)).astype(np.float32)
    return Snapshot({"dark": {"image": rng.random((2, 3, 32, 32)).astype(np.float32), "keypoints": kp,
                              "visible": np.ones((2, 3), np.float32), "pred_keypoints": kp + 1,
                              "heatmaps": rng.random((2, 3, 8, 8)).astype(np.float32),
                              "target": rng.random((2, 3, 8, 8)).astype(np.float32)}})


def visdom_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "kitpose.visdom" and r.levelno >= logging.WARNING]


def run_hooks(monitor, tmp_path: Path, steps: int = 200) -> float:
    """Call every hook as the engine does; returns the seconds spent inside hooks."""
    spent = 0.0
    started = time.perf_counter()
    monitor.on_start(run_info(tmp_path))
    spent += time.perf_counter() - started
    for step in range(1, steps + 1):
        started = time.perf_counter()
        monitor.on_step(step, step // 100, {"loss": 1.0 / step, "lr": 0.001, "images_per_s": 90.0})
        if step % 100 == 0:
            monitor.on_epoch(step // 100, {"dark": {"pck": 0.5}}, tiny_snapshot())
        spent += time.perf_counter() - started
    started = time.perf_counter()
    monitor.on_end({"dark": {"pck": 0.6}}, "| decoder | pck |\n|---|---|\n| dark | 0.6 |")
    return spent + time.perf_counter() - started


# -- registration --------------------------------------------------------------------------------
def test_monitors_and_command_are_registered() -> None:
    assert {"visdom", "figures"} <= set(kitpose.available("monitor"))
    entry = kitpose.get_registry().get("monitor", "visdom")
    assert entry.summary.startswith("Live curves")
    done = subprocess.run([sys.executable, "-m", "kitpose", "visdom", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert "--install-assets" in done.stdout and "--port" in done.stdout


def test_hook_modules_import_nothing_heavy() -> None:
    code = ("import sys, kitpose_plugins.monitors.visdom, kitpose_plugins.monitors.figures\n"
            "heavy = [m for m in ('torch', 'cv2', 'visdom', 'numpy', 'matplotlib') if m in sys.modules]\n"
            "print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


# -- recipe keys ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"port": 70000}, "port must be a number from 1 to 65535"),
    ({"every": 0}, "every must be a whole number"),
    ({"env": "runs/x"}, "env must use letters"),
    ({"interval": 0}, "interval must be a positive number"),
    ({"password": "hunter2"}, "has no parameter 'password'"),  # credentials never come from a recipe
    ({"imgaes": True}, "did you mean 'images'"),
])
def test_bad_recipe_keys_are_one_clear_error(params: dict, message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        kitpose.build("monitor", "visdom", **params)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_env_is_named_after_the_run(tmp_path: Path) -> None:
    from kitpose_plugins.monitors.visdom.monitor import env_name

    assert env_name(run_info(tmp_path)) == "toy-20261121-090000"
    other = RunInfo(name="my run", dir=tmp_path / "x" / "20261121-120000", recipe={}, epochs=1, steps_per_epoch=1)
    assert env_name(other) == "my-run-20261121-120000"


# -- a server that is absent or stuck ------------------------------------------------------------------
def test_absent_server_costs_nothing_and_is_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor = kitpose.build("monitor", "visdom", port=free_port(), interval=0.05, timeout=1.0)
    spent = run_hooks(monitor, tmp_path)
    time.sleep(0.3)  # let the sender retry a few times
    started = time.perf_counter()
    monitor.close()
    closing = time.perf_counter() - started
    assert spent < 1.0 and closing < 3.0
    warned = visdom_warnings(caplog)
    assert len(warned) == 1
    assert "no Visdom server" in warned[0] and "connection refused" in warned[0]


def test_stuck_server_never_slows_the_hooks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A socket that accepts connections but never answers: every request hangs.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(64)
    port = stuck.getsockname()[1]
    try:
        monitor = kitpose.build("monitor", "visdom", port=port, interval=0.05, timeout=0.5)
        spent = run_hooks(monitor, tmp_path)
        started = time.perf_counter()
        monitor.close()
        closing = time.perf_counter() - started
    finally:
        stuck.close()
    assert spent < 1.0
    assert closing < 2 * 0.5 + 1.5
    warned = visdom_warnings(caplog)
    assert len(warned) == 1 and "no answer within 0.5 s" in warned[0]


def test_hooks_never_raise(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    monitor = kitpose.build("monitor", "visdom", port=free_port(), interval=0.05, timeout=0.5)
    monitor.on_step(1, 0, {"loss": 1.0})  # before on_start: ignored
    monitor.on_start(run_info(tmp_path))
    monitor.on_step(2, 0, {"loss": "not a number"})
    monitor.on_epoch(1, {"dark": {"pck": object()}}, None)
    monitor.on_end({}, "")
    monitor.close()
    monitor.close()  # twice is harmless
    failed = [w for w in visdom_warnings(caplog) if "failed and is skipped" in w]
    assert any("on_step" in w for w in failed) and any("on_epoch" in w for w in failed)


def test_a_client_that_cannot_start_is_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import kitpose_plugins.monitors.visdom.client as client_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("broken client")

    monkeypatch.setattr(client_module, "Client", broken)
    monitor = kitpose.build("monitor", "visdom", port=free_port(), interval=0.05)
    run_hooks(monitor, tmp_path, steps=20)
    monitor.close()
    warned = visdom_warnings(caplog)
    assert len(warned) == 1 and "RuntimeError: broken client" in warned[0]


def test_sender_stops_even_while_a_request_hangs(tmp_path: Path) -> None:
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(8)
    try:
        monitor = kitpose.build("monitor", "visdom", port=stuck.getsockname()[1], timeout=0.5)
        monitor.on_start(run_info(tmp_path))
        monitor.close()
        names = [t.name for t in threading.enumerate()]
        deadline = time.monotonic() + 3
        while any(n.startswith("kitpose-visdom-toy") for n in names) and time.monotonic() < deadline:
            time.sleep(0.05)
            names = [t.name for t in threading.enumerate()]
        assert not any(n.startswith("kitpose-visdom-toy") for n in names)
    finally:
        stuck.close()


# -- text and curves ------------------------------------------------------------------------------------
def test_results_table_becomes_escaped_html() -> None:
    from kitpose_plugins.monitors.visdom.text import markdown_to_html

    html = markdown_to_html("Best epoch 3\n\n| decoder | pck<b> |\n|:---|---:|\n| dark | 0.91 |\n| argmax | 0.88 |")
    assert html.startswith("<pre>Best epoch 3</pre><table")
    assert html.count("<tr>") == 3 and "pck&lt;b&gt;" in html and "<b>" not in html
    assert re.search(r'text-align:right">0\.91</td>', html)


def test_long_curves_are_thinned_not_dropped() -> None:
    from kitpose_plugins.monitors.figures.series import Curves

    curves = Curves(cap=100)
    for step in range(1, 1001):
        curves.add_step(step, {"loss": 1.0 / step, "lr": 0.1, "images_per_s": 10.0, "loss_aux": float("nan")})
    series = curves.panels["loss"]["loss"]
    assert len(series) <= 100
    assert series.xs[0] == 1 and series.xs[-1] == 1000  # the whole run, at lower resolution
    assert series.xs == sorted(series.xs)
    assert "loss_aux" not in curves.panels["loss"]  # non-finite points are skipped
    assert set(curves.panels) == {"loss", "lr", "throughput"}

    resumed = Curves()
    for step, value in ((1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0), (5, 50.0), (3, 31.0), (4, 41.0)):
        resumed.add("loss", "loss", step, value)  # a resumed run repeats steps 3 and 4
    assert resumed.panels["loss"]["loss"].xs == [1, 2, 3, 4]
    assert resumed.panels["loss"]["loss"].ys == [10.0, 20.0, 31.0, 41.0]


def test_every_keeps_one_point_per_n_steps_whatever_the_log_interval() -> None:
    from kitpose_plugins.monitors.figures.series import StepFilter

    keep = StepFilter(10)
    kept = [step for step in range(3, 61, 3) if keep(step)]  # logged every 3 steps
    assert kept == [3, 15, 27, 39, 51]
    assert keep(5)  # a resumed run starts again from an earlier step


# -- page assets -------------------------------------------------------------------------------------------
def test_assets_cover_every_file_visdom_pages_load() -> None:
    from kitpose_plugins.monitors.visdom.assets import ASSETS, visdom_static_dir

    static = visdom_static_dir()
    wanted = set()
    for page in ("index.html", "login.html"):
        text = (static / page).read_text()
        wanted |= set(re.findall(r"""static_url\(\s*["']([^"']+)["']\s*\)""", text))
    wanted = {w for w in wanted if not w.startswith("../")}  # ../user/style.css is served by a handler
    assert len(wanted) > 15
    not_covered = sorted(w for w in wanted if w not in ASSETS and not (static / w).is_file())
    assert not_covered == []
    assert {spec for spec, _ in ASSETS.values()} >= {"jquery@3.1.1", "plotly.js-dist-min@2.11.1", "react@16.2.0"}


def test_install_assets_explains_a_missing_npm(tmp_path: Path) -> None:
    from kitpose.errors import KitposeError
    from kitpose_plugins.monitors.visdom.assets import install_assets

    with pytest.raises(KitposeError, match="npm pack did not run"):
        install_assets(tmp_path / "static", npm=str(tmp_path / "no-such-npm"), echo=lambda _: None)


def test_one_window_that_cannot_be_sent_does_not_hold_up_the_others():
    from kitpose_plugins.monitors.visdom.panels import Panel
    from kitpose_plugins.monitors.visdom.sender import Sender

    class Client:  # a server that refuses one curve window, as for odd data
        def __init__(self):
            self.lines, self.images, self.saves = [], [], 0

        def line(self, Y, X, win, env, opts):
            if "loss" in win:
                raise ValueError("refused")
            self.lines.append(win)

        def image(self, img, win, env, opts):
            self.images.append(win)

        def text(self, text, win, env, opts):
            self.images.append(win)

        def save(self, envs):
            self.saves += 1

    client, warnings = Client(), []
    sender = Sender(lambda: client, "env", "here", interval=0.01,
                    warn=lambda key, message: warnings.append(key))
    for step in (1, 2):
        sender.add_step(step, {"loss": 1.0 / step, "lr": 0.1})
    sender.show("picture", Panel(win="picture", kind="image", content=np.zeros((4, 4, 3), np.uint8), title="p"))
    sender.add_epoch(1, {"dark": {"PCK": 0.5}})
    sender.flush(5.0)
    assert sender.close(5.0)
    assert any("lr" in w for w in client.lines) and any("val" in w for w in client.lines)
    assert client.images == ["picture"] and client.saves >= 1  # sent after the refused window
    assert len([w for w in warnings if w.startswith("send:")]) == 1  # said once, not per cycle


# -- credentials -----------------------------------------------------------------------------------
@pytest.mark.parametrize("server", ["http://me:s3cret@example.org", "me:s3cret@example.org:8097",
                                    "https://me@example.org/visdom"])
def test_credentials_in_the_server_url_are_refused(server: str) -> None:
    with pytest.raises(ParameterError) as caught:
        kitpose.build("monitor", "visdom", server=server)
    message = str(caught.value)
    assert "must not hold a user name or password" in message and "VISDOM_USERNAME and VISDOM_PASSWORD" in message
    assert "s3cret" not in message and "me@" not in message and "\n" not in message


def test_a_recipe_with_a_password_in_a_url_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from conftest import run_cli

    recipe = Path(__file__).parent / "recipes" / "toy.yaml"
    for args in (["+monitors.visdom={use: visdom, server: 'http://me:s3cret@example.org'}"],
                 ["+vars.pw=s3cret", "+monitors.visdom={use: visdom, server: 'http://me:${vars.pw}@host'}"]):
        for command in ("check", "run"):
            result = run_cli(command, str(recipe), f"runs_dir={tmp_path / 'runs'}", *args, cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
            assert "toy.yaml: monitors.visdom.server: " in lines[0]
            assert "a URL holding a password" in lines[0] and "environment variables" in lines[0]
            assert "s3cret" not in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists()  # no recipe.yaml saved anywhere


def test_a_recipe_file_with_a_password_in_a_url_names_file_and_key(tmp_path: Path) -> None:
    from kitpose.errors import RecipeError
    from kitpose.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("kitpose: 1\nmonitors:\n  visdom: {use: visdom, server: 'https://me:s3cret@host:8097/v'}\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: monitors\.visdom\.server: a URL holding a password "
                                          r"\(https://me:\*\*\*@host:8097\)") as caught:
        load_recipe(path, search_dirs=[])
    assert "s3cret" not in str(caught.value)


def _serve_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **options: object) -> None:
    """``serve`` as ``kitpose visdom`` calls it, with visdom's server loop replaced by a stop."""
    from visdom.server import run_server

    from kitpose_plugins.monitors.visdom.server import serve

    def stop_at_once(print_func: object = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_server, "main", stop_at_once)
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch"))  # serve hides torch while serving
    assert serve(port=free_port(), env_path=tmp_path / "envs", **options) == 0


def test_an_open_server_without_login_warns_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _serve_once(monkeypatch, tmp_path, host="0.0.0.0")
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "anyone on the network can read and change the dashboards" in warnings[0]
    assert "--login" in warnings[0]


@pytest.mark.parametrize("options", [{"host": "127.0.0.1"}, {"host": "0.0.0.0", "login": True}])
def test_a_local_or_login_server_does_not_warn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], options: dict) -> None:
    monkeypatch.setenv("VISDOM_USERNAME", "me")
    monkeypatch.setenv("VISDOM_PASSWORD", "pw")
    monkeypatch.setenv("VISDOM_COOKIE", "0123456789abcdef")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VISDOM_USE_ENV_CREDENTIALS", "")  # serve sets it; restored after the test
    _serve_once(monkeypatch, tmp_path, **options)
    assert "anyone on the network" not in capsys.readouterr().err


def test_kitpose_visdom_on_every_interface_warns(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "kitpose", "visdom", "--host", "0.0.0.0", "--port",
                                str(port), "--env-path", str(tmp_path / "envs")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "anyone on the network can read and change the dashboards" in warnings[0], err


def test_a_run_says_once_on_the_console_that_no_server_answers(tmp_path: Path) -> None:
    """The monitor's warning reaches the console (not only run.log), once, and the run finishes."""
    from conftest import run_cli

    recipe = Path(__file__).parent / "recipes" / "toy.yaml"
    port = free_port()
    result = run_cli("run", str(recipe), "train.epochs=2", "train.log_every=1",
                     f"+monitors.visdom={{use: visdom, port: {port}, interval: 0.05}}",
                     "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if f"no Visdom server at http://127.0.0.1:{port}" in line]
    assert len(said) == 1 and said[0].startswith("kitpose: warning: visdom: "), result.stderr
    assert f"no Visdom server at http://127.0.0.1:{port}" in (tmp_path / "run" / "run.log").read_text()


def test_a_constant_curve_is_drawn_around_its_value():
    import numpy as np

    from kitpose_plugins.monitors.visdom.client import _y_range

    assert _y_range("lr", np.array([0.002, 0.002, np.nan])) == {"ytickmin": 0.0, "ytickmax": pytest.approx(0.0022)}
    assert _y_range("val/rmse", np.array([3.0, 3.0])) == {"ytickmin": 0.0, "ytickmax": pytest.approx(3.3)}
    assert _y_range("val/rmse", np.array([1.0, 3.0])) == {}  # plotly's own range fits a varying curve
    assert _y_range("val/x", np.array([-2.0, -2.0])) == {"ytickmin": pytest.approx(-2.2), "ytickmax": 0.0}


def test_the_page_finds_a_user_style_sheet(tmp_path):
    from kitpose_plugins.monitors.visdom.assets import ensure_user_css

    static = tmp_path / "visdom" / "static"
    static.mkdir(parents=True)
    ensure_user_css(static)
    assert (tmp_path / "visdom" / "user" / "style.css").read_bytes() == b""
    (tmp_path / "visdom" / "user" / "style.css").write_text("body {}")
    ensure_user_css(static)  # a user's own sheet is kept
    assert (tmp_path / "visdom" / "user" / "style.css").read_text() == "body {}"
