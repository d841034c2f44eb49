"""`t2scaling eval`: the command line of `t2scaling.evaluate`."""

import logging
from pathlib import Path

from t2scaling.cli import add_device_argument
from t2scaling.evaluate import evaluate_task


def add_arguments(parser):
    from t2scaling.config import schema_default

    parser.add_argument("--checkpoint", required=True, help="HF checkpoint directory")
    parser.add_argument("--task", required=True, help="a registered task name, or a task table file (.parquet)")
    parser.add_argument("--task-path", help="local files for a real task (hub schema), or a synthetic family jsonl")
    parser.add_argument("--world-dir", help="world directory holding tasks/{family}.jsonl (synthetic tasks)")
    parser.add_argument("--kind", help="registered task kind whose verifier sampling uses (default: the task name, "
                        "or the table file's stem)")
    parser.add_argument("--out", required=True, help="per-question output table (.parquet)")
    parser.add_argument("--mode", choices=["likelihood", "sampling"], default=schema_default("evaluation.mode"),
                        help="likelihood: NLL (nats) of each gold answer; sampling: --n verified samples")
    parser.add_argument("--n", type=int, default=schema_default("evaluation.n_samples"),
                        help="samples per question (sampling mode)")
    parser.add_argument("--temperature", type=float, default=schema_default("evaluation.temperature"),
                        help="sampling temperature (sampling mode; the NLL is always at 1)")
    parser.add_argument("--max-new-tokens", type=int, help="sampling budget (default: answer tokens + margin)")
    parser.add_argument("--batch-size", type=int, default=schema_default("evaluation.batch_size"),
                        help="questions per forward pass (sampling: at most, within a cache budget)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N test questions")
    parser.add_argument("--seed", type=int, default=schema_default("seed"),
                        help="seed of the samples (sampling mode; each question has its own stream)")
    add_device_argument(parser)


def run(args):
    from t2scaling.tasks import TASKS, load_task

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.task in TASKS and not Path(args.task).exists():
        options = {k: v for k, v in (("path", args.task_path), ("world_dir", args.world_dir)) if v is not None}
        table, task = load_task(args.task, **options), args.task
    else:
        table, task = args.task, None
    evaluate_task(args.checkpoint, table, args.out, mode=args.mode, n_samples=args.n, temperature=args.temperature,
                  batch_size=args.batch_size, device=args.device, seed=args.seed, limit=args.limit,
                  task=args.kind or task,
                  max_new_tokens=args.max_new_tokens)
