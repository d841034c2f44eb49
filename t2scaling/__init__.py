"""t2scaling: Train-to-Test scaling laws — fit, plan and validate N, D and k under one compute budget."""

__version__ = "0.1.0"
