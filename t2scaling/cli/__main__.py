"""`python -m t2scaling.cli`: the `t2scaling` command line (torchrun launches training this way)."""

import sys

from t2scaling.cli import main

sys.exit(main())
