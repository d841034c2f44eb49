"""The Fit JSON contract (DESIGN.md §5): what every fitter writes and every consumer (frontier, plots) reads."""

import dataclasses
import json

import numpy as np

from t2scaling import __version__
from t2scaling.atomic import atomic_file
from t2scaling.laws import LAWS, get_law


@dataclasses.dataclass
class FitResult:
    law: str  # name in the law registry
    params: dict  # natural parameters, keyed by the law's param_names
    task: str = ""
    intervals: dict = dataclasses.field(default_factory=dict)  # name -> [lo, hi] (bootstrap percentiles)
    derived: dict = dataclasses.field(default_factory=dict)  # e.g. n_star_exponent = beta/(alpha+beta)
    bootstrap_params: list = dataclasses.field(default_factory=list)  # one params dict per replicate
    objective: float = float("nan")
    r2: float = float("nan")
    n_points: int = 0
    restarts: int = 0
    converged: bool = False
    seconds: float = 0.0
    input_hash: str = ""
    options: dict = dataclasses.field(default_factory=dict)
    k_grid: list = dataclasses.field(default_factory=list)
    # span of the fitted data: {"N", "D", "C_train" (6ND), "tokens_per_param", "k"} -> [min, max]; {} in old fits
    data_range: dict = dataclasses.field(default_factory=dict)
    version: str = __version__

    def __post_init__(self):
        law = get_law(self.law)
        missing = [p for p in law.param_names if p not in self.params]
        if missing:
            raise ValueError(f"fit for law {self.law!r} lacks parameters {missing}; refit or fix the JSON")
        self.params = {p: float(self.params[p]) for p in law.param_names}

    @property
    def model(self):
        return get_law(self.law)

    @property
    def metric(self):
        return self.model.metric

    def predict(self, N, D, k=1.0, params=None):
        """Predicted metric (loss in nats or accuracy in [0, 1]) at N params, D tokens, k samples."""
        return self.model.predict(self.params if params is None else params, N, D, k)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["metric"] = self.metric
        return out

    def to_json(self, path):
        """Write atomically (temp file + rename) so a killed job never leaves a half-written fit."""
        text = json.dumps(self.to_dict(), indent=2, default=_jsonable)
        with atomic_file(path) as tmp, open(tmp, "w") as fh:
            fh.write(text + "\n")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to fit JSON")


def load_fit(path):
    """Read a Fit JSON written by `FitResult.to_json`; every error names the file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: fit JSON not found; run `t2scaling fit` (or the fit rule) to write it") \
            from None
    except IsADirectoryError:
        raise ValueError(f"{path}: not a fit JSON (a directory)") from None
    hint = "pass the .json file `t2scaling fit` writes"
    if raw.startswith(b"PAR1"):
        raise ValueError(f"{path}: not a fit JSON (a Parquet file, perhaps an observation table); {hint}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a fit JSON (binary, not UTF-8 text: byte {err.start}); {hint}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a fit JSON ({err}); {hint}, or re-run the fit that wrote it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a fit JSON (its top level is a {_json_type(data)}, expected an object "
                         f"with 'law' and 'params'); {hint}")
    data.pop("metric", None)
    fields = {f.name for f in dataclasses.fields(FitResult)}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"{path}: unknown fit JSON fields {sorted(unknown)}")
    if "law" not in data or "params" not in data:
        raise ValueError(f"{path}: fit JSON needs 'law' and 'params'")
    if not isinstance(data["law"], str) or data["law"] not in LAWS:
        raise ValueError(f"{path}: unknown law {data['law']!r} in the fit JSON; known laws: {', '.join(sorted(LAWS))}")
    if not isinstance(data["params"], dict):
        raise ValueError(f"{path}: 'params' is a {_json_type(data['params'])}, expected an object of parameter "
                         "values")
    try:
        return FitResult(**data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from None


def _json_type(value):
    """The JSON name of a decoded value's type, for messages."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
