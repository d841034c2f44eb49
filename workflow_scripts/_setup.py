"""Shared preamble of the `script:` wrappers: make the library importable and send all output to the log."""

import logging
import sys
from pathlib import Path


def start(snakemake):
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # conda envs do not install the package
    Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(snakemake.log[0], "w", buffering=1)  # log lines, tqdm bars and warnings
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log = logging.getLogger(f"t2scaling.rule.{snakemake.rule}")
    log.info("rule %s: wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    return log
