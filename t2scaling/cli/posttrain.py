"""`t2scaling posttrain`: the command line of `t2scaling.posttrain`."""

import logging

from t2scaling.cli import add_device_argument
from t2scaling.posttrain import MODES, posttrain


def add_arguments(parser):
    from t2scaling.config import schema_default

    parser.add_argument("--checkpoint", required=True, help="base HF checkpoint directory")
    parser.add_argument("--task-table", required=True, help="task table (.parquet/.csv/.jsonl) with a train split")
    parser.add_argument("--out", required=True, help="post-trained checkpoint directory to write")
    parser.add_argument("--mode", choices=MODES, default="sft", help="ft: loss on prompt + answer; sft: answer only")
    parser.add_argument("--task", help="task name for t2_meta.json (default: the table file's stem)")
    parser.add_argument("--epochs", type=float, default=schema_default("posttrain.epochs"),
                        help="passes over the train split (may be fractional): ceil(epochs * examples / batch size) steps")
    parser.add_argument("--batch-size", type=int, default=schema_default("posttrain.batch_size"),
                        help="examples per optimizer step")
    parser.add_argument("--lr", type=float, default=schema_default("posttrain.lr"),
                        help="constant AdamW learning rate")
    parser.add_argument("--max-steps", type=int, default=schema_default("posttrain.max_steps"),
                        help="cap on the number of steps")
    parser.add_argument("--seed", type=int, default=schema_default("seed"),
                        help="seed of the example order (and of any dropout)")
    add_device_argument(parser)
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--log", dest="log_path", help="JSONL log of per-step losses")


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    posttrain(args.checkpoint, args.task_table, args.out, mode=args.mode, epochs=args.epochs,
              batch_size=args.batch_size, lr=args.lr, max_steps=args.max_steps, seed=args.seed, device=args.device,
              threads=args.threads, log_path=args.log_path, task=args.task)
