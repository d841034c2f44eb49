"""Versions of what the workflow's expensive stages compute (DESIGN.md §4.2, README "Incremental re-runs").

Training, evaluation and post-training, and the corpus and task tables they read, are keyed to these numbers
(each rule has its stage's version as a param), not to the library's source: a comment, a refactor or a
speed-up anywhere in the library re-runs none of them, so a trained grid survives code edits. A change that
alters what a stage computes bumps its number, which re-runs that stage and everything downstream of it; a
change in a module that several stages import (tasks.py: the task loaders and the sampling verifiers) bumps
each stage whose output it alters. The synthetic world is keyed the same way to `t2scaling.world.VERSION`, the
generator's own version (which also seeds it).

Literals only: rules/common.smk reads them with `t2scaling.deps.constant`, without importing anything.
"""

DATA_VERSION = 1  # rule corpus: tokenizer training and token files (t2scaling.data)
TASKS_VERSION = 1  # rules task_table, task_train_table: question and train tables (t2scaling.tasks loaders)
TRAIN_RECIPE_VERSION = 1  # rule train: checkpoints (t2scaling.train, model, flops; the recipe, schedule, data order)
EVAL_VERSION = 1  # rules evaluate, posttrain_evaluate, val_loss: per-question NLL/samples, validation loss
POSTTRAIN_VERSION = 1  # rule posttrain: FT/SFT checkpoints (t2scaling.posttrain)
