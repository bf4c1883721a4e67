"""Built-in plugin 'visdom': live monitoring in a Visdom server, and the server itself.

Registers the ``visdom`` monitor (``monitors: {visdom: {use: visdom, port: 8097}}``)
and adds ``kitpose visdom``, which starts a Visdom server offline
(``--install-assets`` fetches the page's JavaScript from the npm registry).
Everything heavy (visdom, numpy, OpenCV) loads only when used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from kitpose.registry import Registry


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.monitor("visdom", "kitpose_plugins.monitors.visdom.monitor:VisdomMonitor")


@hookimpl
def kitpose_add_commands(subparsers: "argparse._SubParsersAction") -> None:
    from kitpose_plugins.monitors.visdom.server import add_arguments

    parser = subparsers.add_parser(
        "visdom", help="start a Visdom server for live monitoring (offline; 127.0.0.1 by default)",
        description="Start a Visdom server that needs no internet, storing its envs under runs/visdom. "
                    "Credentials for --login come from VISDOM_USERNAME / VISDOM_PASSWORD.")
    add_arguments(parser)
    parser.set_defaults(handler=run_visdom_command)


def run_visdom_command(args: Any) -> int:
    """Handler of ``kitpose visdom`` (imports the server code only when run)."""
    from kitpose_plugins.monitors.visdom.server import run_command

    return run_command(args)
