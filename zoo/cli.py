"""`zoo`: the command for everything but training (`zoo models`, `zoo predict`, `zoo leaderboard`,
`zoo study`, `zoo monitor`, `zoo ensemble`)."""

from __future__ import annotations

import argparse
import sys


def _models(args: argparse.Namespace) -> int:
    from zoo import registry

    rows = registry.describe_all()  # third-party plugins inspected in a child process, time-limited
    if not rows:
        print("no models installed", file=sys.stderr)
        return 1
    widths = {key: max(len(key), *(len(r[key]) for r in rows)) for key in ("name", "family", "distribution")}
    header = {
        "name": "name",
        "family": "family",
        "distribution": "distribution",
        "description": "description",
    }
    for row in [header, *rows]:
        print(
            f"{row['name']:<{widths['name']}}  {row['family']:<{widths['family']}}  "
            f"{row['distribution']:<{widths['distribution']}}  {row['description']}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo", description="credit-zoo: models, scoring, leaderboards.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list installed model plugins")
    board = sub.add_parser("leaderboard", help="summarise a multirun directory", add_help=False)
    board.add_argument("rest", nargs=argparse.REMAINDER)
    score = sub.add_parser("predict", help="score a file with a finished run", add_help=False)
    score.add_argument("rest", nargs=argparse.REMAINDER)
    monitor = sub.add_parser(
        "monitor", help="population stability of a finished run on a new file", add_help=False
    )
    monitor.add_argument("rest", nargs=argparse.REMAINDER)
    study = sub.add_parser("study", help="summarise an Optuna study, export its best trial", add_help=False)
    study.add_argument("rest", nargs=argparse.REMAINDER)
    ensemble = sub.add_parser("ensemble", help="build ensembles of a multirun's runs", add_help=False)
    ensemble.add_argument("rest", nargs=argparse.REMAINDER)
    args, rest = parser.parse_known_args(argv)
    if args.command == "models":
        return _models(args)
    if args.command == "predict":
        from zoo.predict import main as predict_main

        return predict_main([*args.rest, *rest])
    if args.command == "monitor":
        from zoo.monitor import main as monitor_main

        return monitor_main([*args.rest, *rest])
    if args.command == "study":
        from zoo.study import main as study_main

        return study_main([*args.rest, *rest])
    if args.command == "ensemble":
        from zoo.ensemble.cli import main as ensemble_main

        return ensemble_main([*args.rest, *rest])
    from zoo.leaderboard import main as leaderboard_main

    return leaderboard_main([*args.rest, *rest])


if __name__ == "__main__":
    sys.exit(main())
