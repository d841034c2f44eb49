"""`t2scaling tokenize`: the command line of `t2scaling.data`."""

import json
import logging

from t2scaling.data import prepare_corpus


def add_arguments(parser):
    from t2scaling.config import schema_default

    parser.add_argument("--train", required=True, help="train corpus: file, folder or hub dataset id[:config]")
    parser.add_argument("--val", help="validation corpus (default: hold out --val-documents of --train)")
    parser.add_argument("--out-dir", required=True, help="writes tokenizer/, train.npy, val.npy, corpus.json")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--vocab-size", type=int, default=schema_default("corpus.vocab_size"),
                       help="train a byte-level BPE of this many ids")
    which.add_argument("--tokenizer", help="use a pretrained tokenizer (folder or hub id) instead of training one")
    parser.add_argument("--text-field", default=schema_default("corpus.text_field"),
                        help="field (column) that holds each document's text")
    parser.add_argument("--train-split", default="train", help="split of --train read (folders and hub datasets)")
    parser.add_argument("--val-split", default="validation",
                        help="split of --val read (folders and hub datasets)")
    parser.add_argument("--val-documents", type=int, help="documents of the val split (all if not given)")
    parser.add_argument("--tokenizer-documents", type=int, help="train the BPE on at most this many documents")
    parser.add_argument("--streaming", action="store_true", help="stream the corpora instead of caching them")


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    summary = prepare_corpus(args.train, args.val, args.out_dir, tokenizer=args.tokenizer or "train",
                             vocab_size=args.vocab_size, text_field=args.text_field, train_split=args.train_split,
                             val_split=args.val_split, val_documents=args.val_documents,
                             tokenizer_documents=args.tokenizer_documents, streaming=args.streaming)
    print(json.dumps(summary, indent=2))
