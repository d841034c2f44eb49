"""`python -m t2scaling`: the `t2scaling` command line."""

import sys

from t2scaling.cli import main

sys.exit(main())
