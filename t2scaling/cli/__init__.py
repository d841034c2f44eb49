"""`t2scaling` command line: a thin dispatcher over one small module per command in this package.

A command module (`t2scaling/cli/<command>.py`) defines `add_arguments(parser)` and `run(args)` and calls the
library, which exposes functions only (no argparse outside this package). It is imported only when invoked, so
`t2scaling fit` never imports torch.
"""

import argparse
import importlib
import os
import sys

import t2scaling

# command -> (module, one-line help)
COMMANDS = {
    "world": ("t2scaling.cli.world", "generate the embedded synthetic world: corpora and task files"),
    "tokenize": ("t2scaling.cli.tokenize", "train/load a tokenizer and write memory-mapped token files"),
    "train": ("t2scaling.cli.train", "pretrain one (N, D) grid cell to an HF checkpoint"),
    "eval": ("t2scaling.cli.eval", "evaluate a checkpoint on a task (per-question NLL or samples)"),
    "posttrain": ("t2scaling.cli.posttrain", "fine-tune a checkpoint on a task's train split (FT or SFT)"),
    "fit": ("t2scaling.cli.fit", "fit a scaling law (chinchilla, approach1, approach2, beta_chinchilla) to a table"),
    "frontier": ("t2scaling.cli.frontier", "solve compute-optimal frontiers over a range of budgets"),
    "plan": ("t2scaling.cli.plan", "recommend N, D and k for one training and inference budget"),
    "extrapolate": ("t2scaling.cli.extrapolate", "fit on part of the checkpoints, predict the held-out ones, report errors"),
    "lawbench": ("t2scaling.cli.lawbench", "judge every law against baselines on public training runs"),
    "validate": ("t2scaling.cli.validate", "derive the predicted-optimal cells to train at a budget, or tabulate them"),
}

DESCRIPTION = """Train-to-Test (T²) scaling laws: choose a model size N, its training tokens D and the samples
per question k to draw at inference, so that a training budget and an inference budget buy the best
pass@k. Fit a law to measured checkpoints (`fit`), then ask for the optimum at one budget (`plan`) or over
a range (`frontier`); `extrapolate` checks a law on held-out checkpoints. `world`, `tokenize`, `train`,
`eval` and `posttrain` (which need torch) make such checkpoints from scratch."""

EPILOG = """documentation (in the t2scaling repository):
  docs/contracts.md  data contracts: the tables and checkpoints you bring, every file written (columns, units)
  docs/science.md    conventions: budgets, the k grid, fitting, intervals, extrapolation, synthetic tasks
  README.md          the workflow: configs, targets, incremental re-runs

`t2scaling COMMAND --help` lists a command's options."""

# Errors a command raises for bad input or a failed computation: one line naming the command, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, RuntimeError)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default, except where there is none to show (unset, a flag, an empty list)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default in ("", []) \
                or isinstance(action, argparse._StoreTrueAction):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Every parser, nested sub-commands included (they are made with the parent's class), shows defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def add_device_argument(parser):
    """--device of the commands that run a model (eval, posttrain; train's comes with its Recipe options), the
    pipeline's default (config schema training.device)."""
    from t2scaling.config import schema_default

    parser.add_argument("--device", default=schema_default("training.device"), help=DEVICE_HELP)


def error_text(err):
    """One line for an exception; a KeyError's message without the quotes str() adds."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err) or type(err).__name__


def build_parser(command=None):
    """The `t2scaling` parser; only `command`'s module is imported to add its options."""
    parser = Parser(prog="t2scaling", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {t2scaling.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return module.run(args) or 0
    except USER_ERRORS as err:
        print(f"t2scaling {args.command}: error: {error_text(err)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `t2scaling plan ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0


if __name__ == "__main__":
    sys.exit(main())
