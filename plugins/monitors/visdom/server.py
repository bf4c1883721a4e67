"""``kitpose visdom``: a Visdom server that works offline, and its page assets.

Visdom's ``python -m visdom.server`` downloads JavaScript before it even reads its
arguments and exits without internet. This command calls the function that
launcher calls afterwards (``visdom.server.run_server.main``), so it starts with no
network: bound to 127.0.0.1 unless told otherwise, with its envs stored under the
runs folder (``runs/visdom``). ``--install-assets`` fetches the page's JavaScript
from the npm registry (see :mod:`kitpose_plugins.monitors.visdom.assets`).
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from kitpose.errors import KitposeError

DEFAULT_PORT = 8097
DEFAULT_ENV_PATH = "runs/visdom"
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
_ALL_HOSTS = ("0.0.0.0", "*")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``kitpose visdom``."""
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="127.0.0.1 (default: this machine only) or 0.0.0.0 (every interface)")
    parser.add_argument("--env-path", default=DEFAULT_ENV_PATH,
                        help=f"folder where envs are stored (default {DEFAULT_ENV_PATH})")
    parser.add_argument("--login", action="store_true",
                        help="require a login; credentials from VISDOM_USERNAME, VISDOM_PASSWORD "
                             "(and VISDOM_COOKIE the first time)")
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=_LOG_LEVELS,
                        help="server log level (default WARNING; INFO logs every request)")
    parser.add_argument("--install-assets", action="store_true",
                        help="fetch the page's JavaScript and CSS from the npm registry into visdom's "
                             "static folder, then exit")


def run_command(args: argparse.Namespace) -> int:
    """The handler of ``kitpose visdom``."""
    from kitpose_plugins.monitors.visdom.assets import install_assets

    if args.install_assets:
        install_assets()
        return 0
    return serve(port=args.port, host=args.host, env_path=args.env_path, login=args.login,
                 log_level=args.log_level)


def open_server_warning(port: int) -> str:
    """The one line ``kitpose visdom --host 0.0.0.0`` without ``--login`` prints."""
    return (f"kitpose: warning: Visdom listens on every interface (port {port}) without a login: anyone "
            "on the network can read and change the dashboards; add --login (with VISDOM_USERNAME and "
            "VISDOM_PASSWORD set) or use --host 127.0.0.1")


def _check_port_free(host: str, port: int) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado does: only a listener blocks
    try:
        probe.bind(("127.0.0.1" if host in _LOCAL_HOSTS else "0.0.0.0", port))
    except OSError as exc:
        raise KitposeError(f"port {port} is not free: {exc.strerror or exc}",
                           hint="stop what uses it or choose another with --port") from None
    finally:
        probe.close()


def _prepare_login() -> None:
    """Make visdom read the credentials from the environment instead of prompting."""
    missing = [v for v in ("VISDOM_USERNAME", "VISDOM_PASSWORD") if not os.environ.get(v)]
    if missing:
        raise KitposeError(f"--login needs {' and '.join(missing)} in the environment",
                           hint="export VISDOM_USERNAME=... VISDOM_PASSWORD=...")
    cookie_dir = Path.home() / ".visdom"
    if not (cookie_dir / "COOKIE_SECRET").is_file() and not os.environ.get("VISDOM_COOKIE"):
        raise KitposeError("--login needs VISDOM_COOKIE (a random secret) the first time",
                           hint="export VISDOM_COOKIE=$(python -c 'import secrets; print(secrets.token_hex(16))')")
    cookie_dir.mkdir(parents=True, exist_ok=True)  # visdom writes its cookie secret here
    os.environ["VISDOM_USE_ENV_CREDENTIALS"] = "1"


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1", env_path: str | Path = DEFAULT_ENV_PATH,
          login: bool = False, log_level: str = "WARNING") -> int:
    """Run a Visdom server until Ctrl-C; returns the exit code."""
    from kitpose_plugins.monitors.visdom.assets import ensure_user_css, missing_assets

    if not 1 <= int(port) <= 65535:
        raise KitposeError(f"--port must be from 1 to 65535, got {port}")
    if host not in _LOCAL_HOSTS + _ALL_HOSTS:
        raise KitposeError(f"--host must be 127.0.0.1 or 0.0.0.0, got {host!r}",
                           hint="visdom listens either on this machine only or on every interface")
    folder = Path(env_path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KitposeError(f"cannot create the env folder {folder}: {exc.strerror or exc}") from None
    if login:
        _prepare_login()
    _check_port_free(host, port)
    if host in _ALL_HOSTS and not login:
        print(open_server_warning(port), file=sys.stderr, flush=True)
    ensure_user_css()
    missing = missing_assets()
    if missing:
        print(f"kitpose: visdom's page assets are missing ({len(missing)} files): the API works but the "
              f"page stays blank; run: kitpose visdom --install-assets", file=sys.stderr)
    shown = "127.0.0.1" if host in _LOCAL_HOSTS else socket.gethostname()
    argv = ["visdom", "-port", str(int(port)), "-env_path", str(folder) + os.sep, "-logging_level", log_level]
    if host in _LOCAL_HOSTS:
        argv.append("-bind_local")
    if login:
        argv.append("-enable_login")

    def announce(listening: int) -> None:
        print(f"Visdom at http://{shown}:{listening} (envs in {folder}); Ctrl-C stops it", flush=True)

    # The visdom package imports torch when it can, only to accept tensors in its
    # client; the server never needs it, and skipping it starts the server seconds sooner.
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]
    from visdom.server import app, run_server

    # visdom turns on tornado's debug mode, which restarts the server whenever any
    # loaded Python file changes; a monitoring server must stay up
    app.tornado_settings["autoreload"] = False
    saved = sys.argv
    sys.argv = argv
    try:
        run_server.main(print_func=announce)
    except KeyboardInterrupt:
        print("Visdom stopped", file=sys.stderr)
    except OSError as exc:
        raise KitposeError(f"visdom cannot listen on port {port}: {exc.strerror or exc}") from None
    finally:
        sys.argv = saved
    return 0
