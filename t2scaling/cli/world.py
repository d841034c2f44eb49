"""`t2scaling world`: the command line of `t2scaling.world`."""

import json
import logging

from t2scaling.world import write_world


def add_arguments(parser):
    # Seed and question counts default to the config schema's world.*; the other options default to
    # write_world's signature (left out, they are not passed).
    from t2scaling.config import schema_default

    parser.add_argument("--out", required=True, help="output folder (corpus/, tasks/, world.json)")
    parser.add_argument("--seed", type=int, default=schema_default("world.seed"), help="random seed")
    parser.add_argument("--questions", type=int, dest="n_questions", default=schema_default("world.questions"),
                        help="test questions per task family")
    parser.add_argument("--train-questions", type=int, dest="n_train_questions",
                        default=schema_default("world.train_questions"),
                        help="train-split questions per family (for fine-tuning; disjoint from test)")
    parser.add_argument("--entities", type=int, dest="n_entities", help="invented countries (5 facts each)")
    parser.add_argument("--documents", type=int, dest="n_documents", help="train + val documents from the passage mix")
    parser.add_argument("--val-fraction", type=float, dest="val_fraction",
                        help="share of --documents written to the val corpus (between 0 and 1)")
    parser.add_argument("--zipf", type=float, dest="zipf_exponent",
                        help="exponent s of the countries' mention weights rank^-s")


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = {k: v for k, v in vars(args).items()
               if k in ("seed", "n_questions", "n_train_questions", "n_entities", "n_documents", "val_fraction",
                        "zipf_exponent") and v is not None}
    summary = write_world(args.out, **options)
    print(json.dumps(summary["counts"], indent=2))
