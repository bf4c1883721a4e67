"""Built-in plugin 'lab': ``kitpose lab`` ranks every registered decoder on maps whose true
centre is known exactly, with no training.

    kitpose lab [--decoders NAME ...] [--maps N] [--out DIR]

Gaussian maps of several widths and sizes, centres deep inside, near and on the border,
additive noise, two-peaked maps; every decoder (built-in or from an installed plugin) on
the same maps; then each encoder's targets decoded back (round trip); with ``--run``, a
finished run's predicted heatmaps decoded by every decoder. Writes ``lab.md``,
``lab.csv``, ``roundtrip.csv`` and two charts into a run-directory-like folder. The work
loads only when the command runs.
"""
from __future__ import annotations

from typing import Any

from kitpose import hookimpl


@hookimpl
def kitpose_add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lab", help="rank every decoder on maps with exactly known centres (no training)",
        description="Measure every registered decoder on synthetic heatmaps whose true centre is "
                    "known: Gaussian widths, map sizes, border distance, noise, two peaks; and "
                    "every encoder's round trip. Writes a table and charts.")
    parser.add_argument("--decoders", nargs="+", metavar="NAME", default=None,
                        help="only these decoders (default: every registered decoder)")
    parser.add_argument("--maps", type=_count, default=256, metavar="N",
                        help="maps per case (default: 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the maps' centres and noise (default: 0)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/lab/<time>)")
    parser.add_argument("--run", default=None, metavar="RUN_DIR",
                        help="also decode a finished run's predicted test heatmaps (its heatmaps.npz, "
                             "written when the run's recipe sets test.keep_heatmaps: true)")
    parser.add_argument("--page", default=None, metavar="MARKDOWN",
                        help="also write the tables into this page, between its '<!-- kitpose:lab -->' "
                             "and '<!-- /kitpose:lab -->' lines (e.g. docs/results.md)")
    parser.set_defaults(handler=_run, computes=True)  # the command line prepares threads and memory


def _count(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text!r}")
    return value


def _run(args: Any) -> int:
    from kitpose_plugins.lab.lab import run_lab

    run_lab(decoders=args.decoders, maps=args.maps, seed=args.seed, out=args.out, page=args.page, run=args.run)
    return 0
