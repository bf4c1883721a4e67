"""``kitpose study``: train several recipes and print one combined results table."""
from kitpose import hookimpl


@hookimpl
def kitpose_add_commands(subparsers):
    parser = subparsers.add_parser(
        "study", help="run every recipe of a study (once per seed), tabulate them and judge its claims")
    parser.add_argument("recipe", help="a study recipe, e.g. recipes/study_dark.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="overrides applied to every run of the study (e.g. train.epochs=2); "
                             "study.KEY=VALUE changes the study itself (study.seeds=[1314])")
    parser.add_argument("--dir", default=None, help="study folder (default: runs/<study name>)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    parser.add_argument("--page", default=None, metavar="MARKDOWN",
                        help="also write the tables into this page, between its '<!-- kitpose:NAME -->' "
                             "and '<!-- /kitpose:NAME -->' lines (e.g. docs/results.md)")
    parser.set_defaults(handler=_run, computes=True)  # the command line prepares threads and memory


def _run(args):
    from kitpose_plugins.study.runner import run_study

    run_study(args.recipe, args.overrides, folder=args.dir, fresh=args.fresh, page=args.page)
    return 0
