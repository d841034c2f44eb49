"""`t2scaling` command line: a thin dispatcher. Each subcommand lives beside the concept it exposes.

A command module defines `add_arguments(parser)` and `run(args)`; it is imported only when invoked, so
`t2scaling fit` never imports torch.
"""

import argparse
import importlib
import sys

import t2scaling

# command -> (module, one-line help)
COMMANDS = {
    "world": ("t2scaling.world", "generate the embedded synthetic world: corpora and task files"),
    "tokenize": ("t2scaling.data", "train/load a tokenizer and write memory-mapped token files"),
    "train": ("t2scaling.train", "pretrain one (N, D) grid cell to an HF checkpoint"),
    "eval": ("t2scaling.evaluate", "evaluate a checkpoint on a task (per-question NLL or samples)"),
    "posttrain": ("t2scaling.posttrain", "fine-tune a checkpoint on a task's train split (FT or SFT)"),
    "fit": ("t2scaling.fit", "fit a scaling law (chinchilla, approach1, approach2) to a table"),
    "frontier": ("t2scaling.frontier", "solve compute-optimal frontiers over a range of budgets"),
    "plan": ("t2scaling.plan", "recommend N, D and k for one training and inference budget"),
    "extrapolate": ("t2scaling.extrapolate", "fit on part of the checkpoints, predict the held-out ones, report errors"),
    "validate": ("t2scaling.validate", "derive the predicted-optimal cells to train at a budget, or tabulate them"),
}


EPILOG = """documentation (in the t2scaling repository):
  docs/contracts.md  data contracts: the tables and checkpoints you bring, every file written (columns, units)
  docs/science.md    conventions: budgets, the k grid, fitting, intervals, extrapolation, synthetic tasks
  README.md          the workflow: configs, targets, incremental re-runs

`t2scaling COMMAND --help` lists a command's options."""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="t2scaling", description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {t2scaling.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args, _ = parser.parse_known_args(argv) if chosen not in COMMANDS else (parser.parse_args(argv), None)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return module.run(args) or 0
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"t2scaling {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
