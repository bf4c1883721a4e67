"""The ``kitpose`` command line (also ``python -m kitpose``).

User mistakes exit with code 2 and one line on stderr; ``--debug`` shows the
traceback. Plugins add sub-commands through the ``kitpose_add_commands`` hook.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import textwrap
from pathlib import Path
import sys
from collections.abc import Sequence
from typing import Any

from kitpose import __version__
from kitpose.errors import KitposeError, PluginError, RecipeError
from kitpose.threads import PASSIVE_REASON

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: commands that only print: a reader that stops early (``| head``) is no failure
LISTINGS = frozenset({"show", "list", "plugins", "check"})


def _add_recipe_args(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    parser.add_argument("recipe", nargs="?" if optional else None,
                        help="path to a YAML recipe, e.g. recipes/hrnet_dark.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override recipe keys (train.epochs=2); +key=v adds a key, ~key removes one")


def build_parser() -> argparse.ArgumentParser:
    """The parser with the core commands (plugin commands are added by :func:`main`)."""
    parser = argparse.ArgumentParser(
        prog="kitpose", description="A model kit for heatmap-based keypoint estimation.")
    parser.add_argument("--version", action="version", version=f"kitpose {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-p", dest="plugins", action="append", default=[], metavar="NAME",
                        help="load plugin NAME (module or entry point); -p no:NAME blocks it")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train, validate and test as a recipe says",
                         usage="kitpose run RECIPE [KEY=VALUE ...] [--run-dir DIR]\n"
                               "       kitpose run --resume RUN_DIR [KEY=VALUE ...]")
    run.add_argument("recipe", nargs="?", help="path to a YAML recipe, e.g. recipes/hrnet_dark.yaml "
                                               "(not needed with --resume RUN_DIR)")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="override recipe keys (train.epochs=2); +key=v adds a key, ~key removes one")
    run.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN_DIR",
                     help="continue a run as recorded in RUN_DIR (with RECIPE and no RUN_DIR: its latest run); "
                          "only epochs, steps, log_every, monitors, device and workers may be changed")
    run.add_argument("--run-dir", default=None, help="write the run here instead of runs/<name>/<time>/")
    run.set_defaults(handler=cmd_run, computes=True)

    check = sub.add_parser("check", help="resolve and validate a recipe without training")
    _add_recipe_args(check)
    check.set_defaults(handler=cmd_check)

    show = sub.add_parser("show", help="print the merged, resolved recipe (or, with --settings, every run setting)")
    _add_recipe_args(show, optional=True)
    show.add_argument("--unresolved", action="store_true", help="keep ${...} interpolations")
    show.add_argument("--settings", action="store_true",
                      help="print every setting of the run with its default and help, and exit")
    show.set_defaults(handler=cmd_show)

    lst = sub.add_parser("list", help="list registered components")
    lst.add_argument("kind", nargs="?", help="only this kind (decoder, encoder, ...)")
    lst.add_argument("--filter", dest="pattern", default=None, metavar="GLOB", help="only names matching GLOB")
    lst.set_defaults(handler=cmd_list)

    predict = sub.add_parser("predict", help="predict keypoints on images with a finished run's model")
    predict.add_argument("run_dir", metavar="RUN_DIR", help="a folder 'kitpose run' wrote")
    predict.add_argument("images", metavar="IMAGES", help="an image file or a folder of images")
    predict.add_argument("--decoder", default=None, help="the test flow's decoder to use (default: val.branch)")
    predict.add_argument("--boxes", default=None, metavar="DETECTIONS",
                         help="person boxes in the --format's file (coco: detection results with image_id, bbox, "
                              "score); default: each whole image is one person")
    predict.add_argument("--format", dest="file_format", default="coco", metavar="NAME",
                         help="the file format of --boxes and of the results: a registered format "
                              "(kitpose list format; default coco)")
    predict.add_argument("--min-score", type=float, default=0.0, help="leave out boxes scoring below this")
    predict.add_argument("--out", default=None, help="where to write (default: RUN_DIR/predict)")
    predict.add_argument("--checkpoint", default=None, choices=("best", "last"),
                         help="default: the one the run's test used (test.checkpoint)")
    predict.add_argument("--batch", type=int, default=32, help="people per forward pass (default 32)")
    predict.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    predict.set_defaults(handler=cmd_predict, computes=True)

    export = sub.add_parser("export", help="export a finished run's model (backbone and head) as ONNX")
    export.add_argument("run_dir", metavar="RUN_DIR", help="a folder 'kitpose run' wrote")
    export.add_argument("--format", default="onnx", choices=("onnx",))
    export.add_argument("--out", default=None, help="the file to write (default: RUN_DIR/model.onnx)")
    export.add_argument("--checkpoint", default=None, choices=("best", "last"),
                        help="default: the one the run's test used (test.checkpoint)")
    export.set_defaults(handler=cmd_export)

    plugins = sub.add_parser("plugins", help="list plugins with their distributions and status")
    plugins.set_defaults(handler=cmd_plugins)

    from kitpose.scaffold import KINDS as TEMPLATE_KINDS

    new = sub.add_parser("new-plugin", help="write a ready-to-install plugin package for one component")
    new.add_argument("name", help="the component's registered name, e.g. median (package kitpose-median)")
    new.add_argument("--kind", default="decoder", metavar="KIND",
                     help="component kind: " + ", ".join(TEMPLATE_KINDS) + " (default: decoder)")
    new.add_argument("--dir", dest="directory", default=".", help="folder to write kitpose-NAME/ into (default: .)")
    new.set_defaults(handler=cmd_new_plugin)
    return parser


# -- commands -------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from kitpose.engine import run_recipe

    recipe, overrides = args.recipe, list(args.overrides)
    if recipe is not None and _is_override(recipe):  # `kitpose run --resume DIR train.epochs=9`
        recipe, overrides = None, [recipe, *overrides]
    if recipe is None and args.resume in (None, "latest"):
        raise RecipeError("no recipe given", hint="kitpose run RECIPE, or kitpose run --resume RUN_DIR")
    run_recipe(recipe, overrides, resume=args.resume, run_dir=args.run_dir)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2

    from kitpose import build
    from kitpose.files import write_atomic
    from kitpose.predict import Predictor, draw, image_files, read_images

    file_format = _checked_format(build("format", args.file_format), args.file_format)
    files = image_files(args.images)
    predictor = Predictor.from_run(args.run_dir, checkpoint=args.checkpoint, decoder=args.decoder,
                                   device=args.device)
    boxes = file_format.read_boxes(args.boxes, files, min_score=args.min_score) if args.boxes else None
    if boxes is not None and (not isinstance(boxes, list) or len(boxes) != len(files)):
        raise PluginError(f"format '{args.file_format}' read_boxes gave no list of boxes per image "
                          f"({len(files)} images)", hint="fix the format's plugin")
    out = Path(args.out) if args.out else Path(args.run_dir) / "predict"
    (out / "images").mkdir(parents=True, exist_ok=True)
    results, count, chunk = [], 0, 64  # images in memory at once
    for start in range(0, len(files), chunk):
        part = files[start:start + chunk]
        images = read_images(part)
        people = predictor(images, None if boxes is None else boxes[start:start + chunk],
                           batch_size=max(1, args.batch), progress=sys.stderr.isatty())
        results += file_format.records(people, part)
        for file, image, found in zip(part, images, people):
            drawn = draw(image, found, predictor.skeleton)
            cv2.imwrite(str(out / "images" / file.name), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            count += len(found)
    written = out / file_format.file_name
    write_atomic(written, file_format.dump(results))
    print(f"predicted {count} {'person' if count == 1 else 'people'} in {len(files)} image"
          f"{'' if len(files) == 1 else 's'} with decoder '{predictor.branch or 'output'}': "
          f"{written} ({file_format.description}), {out / 'images'}")
    return 0


def _checked_format(file_format: Any, name: str) -> Any:
    """A ``format`` component with every member ``kitpose predict`` uses, or a one-line error."""
    missing = [m for m in ("read_boxes", "records", "dump") if not callable(getattr(file_format, m, None))]
    missing += [m for m in ("file_name", "description") if not isinstance(getattr(file_format, m, None), str)]
    if missing:
        raise PluginError(f"format '{name}' lacks {', '.join(missing)}",
                          hint="a format has read_boxes, records and dump methods and file_name and description "
                               "strings (docs/plugins.md)")
    if Path(file_format.file_name).name != file_format.file_name or file_format.file_name in ("", ".", "..", "images"):
        raise PluginError(f"format '{name}' file_name {file_format.file_name!r} is not a plain file name",
                          hint="name a file in the output folder, e.g. keypoints.json")
    return file_format


def cmd_export(args: argparse.Namespace) -> int:
    from kitpose.export import export_onnx

    out = Path(args.out) if args.out else Path(args.run_dir) / "model.onnx"
    report = export_onnx(args.run_dir, out, checkpoint=args.checkpoint)
    print(report)
    return 0


def _is_override(word: str) -> bool:
    return "=" in word or word.startswith("~")


def cmd_check(args: argparse.Namespace) -> int:
    import time

    from kitpose.plan import check_recipe

    start = time.perf_counter()
    plan = check_recipe(args.recipe, args.overrides)
    took = time.perf_counter() - start
    print(f"{plan.recipe.file}: ok ({plan.summary()}) in {took:.2f} s")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from kitpose.recipe import load_recipe

    if args.settings:
        from kitpose.settings import settings_table

        print(settings_table())
        return 0
    if args.recipe is None:
        raise KitposeError("no recipe given", hint="kitpose show RECIPE [key=value ...], or kitpose show --settings")
    recipe = load_recipe(args.recipe, args.overrides)
    if args.unresolved:
        sys.stdout.write(recipe.given())
        return 0
    import yaml

    from kitpose.complete import with_defaults
    from kitpose.plan import plan_recipe

    print("# every setting, resolved (vars are filled in where they were used); component parameters the "
          "recipe leaves out appear at their defaults")
    sys.stdout.write(yaml.safe_dump(with_defaults(plan_recipe(recipe)), sort_keys=False))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from kitpose.plugins import BUILTIN_DIST, get_registry
    from kitpose.registry import KINDS, plural

    registry = get_registry()
    columns = shutil.get_terminal_size((100, 24)).columns
    kinds = [args.kind] if args.kind else list(KINDS)
    for kind in kinds:
        entries = registry.entries(kind, args.pattern)
        if args.kind is None and args.pattern and not entries:
            continue
        print(f"{plural(kind)}:" if not args.kind else f"{plural(kind)} ({len(entries)}):")
        if not entries:
            print("  (none)")
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            provider = e.plugin if (e.dist or "").split(" ")[0] == BUILTIN_DIST else e.provider
            print(listing_line(e.name, width, plain_text(e.summary), f"[{provider}]", columns))
    return 0


def plain_text(text: str) -> str:
    """A docstring line without reStructuredText markup: ``x``, `x` and :role:`x` become x."""
    return re.sub(r"(?::[\w.]+:)?`{1,2}([^`]+?)`{1,2}", r"\1", text)


def listing_line(name: str, width: int, summary: str, tag: str, columns: int) -> str:
    """``  name  summary  [tag]`` wrapped to ``columns``; continuation lines indent under the
    summary, and the tag is never split."""
    indent = " " * (width + 4)
    lines = textwrap.wrap(summary, max(30, columns - len(indent)), break_on_hyphens=False) or [""]
    if len(indent) + len(lines[-1]) + 2 + len(tag) <= columns:
        lines[-1] = f"{lines[-1]}  {tag}".lstrip()
    else:
        lines.append(tag)
    return "\n".join([f"  {name:<{width}}  {lines[0]}", *(indent + line for line in lines[1:])])


def cmd_plugins(args: argparse.Namespace) -> int:
    from kitpose.plugins import get_plugin_manager

    manager = get_plugin_manager()
    infos = manager.plugin_infos()
    width = max((len(i.name) for i in infos), default=0)
    for info in infos:
        dist = f"{info.dist} {info.version}".strip() or "-"
        line = f"{info.name:<{width}}  {info.status:<7}  {dist}  {info.module}"
        if info.error:
            line += f"  ({info.error})"
        print(line)
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from kitpose.scaffold import new_plugin, plugin_names

    root = new_plugin(args.name, args.kind, args.directory)
    names = plugin_names(args.name, args.kind)
    renamed = f" (from '{args.name}': registered names use letters, digits and '_')" \
        if names.name != args.name else ""
    print(f"wrote {root}: the {names.kind} '{names.name}'{renamed}, package {names.package}, "
          f"distribution {names.distribution}")
    print(f"next: cd {root} && pip install -e \".[test]\" && pytest")
    return 0


def _calm_threads_on_a_busy_machine(torch_loaded: bool | None = None) -> None:
    """Before torch loads: when other work keeps cores busy, make idle OpenMP threads sleep
    at once (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning for their turn, which on a busy
    machine slows training down far more than its share (``benchmarks/busy.py``). The wait
    policy changes no number a run computes; an explicit ``OMP_WAIT_POLICY`` is kept."""
    if torch_loaded is None:
        torch_loaded = "torch" in sys.modules  # too late: OpenMP read the policy when torch loaded
    if "OMP_WAIT_POLICY" in os.environ or torch_loaded:
        return
    from kitpose.threads import busy_cores

    busy = busy_cores(reads=5, interval=0.02)
    if busy:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.environ[PASSIVE_REASON] = f"{busy} of {os.cpu_count()} cores busy with other work"  # the run says so


def _prepare_for_compute() -> None:
    """Before a command that trains or runs models loads torch: calm threads on a busy
    machine, and keep freed memory in the process (no faults on every step's large
    temporaries). Neither changes a number."""
    from kitpose.memory import keep_freed_memory

    _calm_threads_on_a_busy_machine()
    keep_freed_memory()


# -- entry point ----------------------------------------------------------------------------
def _plugin_options(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``-p`` values, read before the parser exists (plugins may add commands)."""
    blocked, extra = [], []
    it = iter(argv)
    for arg in it:
        value = None
        if arg == "-p":
            value = next(it, None)
        elif arg.startswith("-p") and len(arg) > 2:
            value = arg[2:]
        if value is None:
            continue
        if value.startswith("no:"):
            blocked.append(value[3:])
        else:
            extra.append(value)
    return blocked, extra


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("KITPOSE_DEBUG"))
    try:
        from kitpose import plugins

        blocked, extra = _plugin_options(argv)
        plugins.configure(blocked=blocked, extra=extra)
        parser = build_parser()
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        plugins.get_plugin_manager().call_each("kitpose_add_commands", subparsers=subparsers)
        args, extra = parser.parse_known_args(argv)
        if extra:  # overrides given after options: `kitpose run R --resume D key=value`
            if hasattr(args, "overrides") and all(not e.startswith("-") for e in extra):
                args.overrides = [*args.overrides, *extra]
            else:
                parser.error("unrecognized arguments: " + " ".join(extra))
        handler: Any = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return EXIT_USAGE
        if getattr(args, "computes", False):  # set by commands that train or run models
            _prepare_for_compute()
        code = handler(args)
        return int(code or 0)
    except KitposeError as exc:
        if debug:
            raise
        print(f"kitpose: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"kitpose: {str(exc) or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `kitpose list | head`: the reader may have all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        listing = argv[:1] and argv[0] in LISTINGS
        if not listing:
            print("kitpose: error: the output was closed before the command finished", file=sys.stderr)
        return 0 if listing else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
