"""The law registry: every scaling law the project fits, as one small class each (DESIGN.md §2.3–2.5).

A law maps (N params, D tokens, k samples) to a predicted metric. Parameters are stored by *natural* name
(A, B, E, alpha, ...) in fit JSON; optimisers work in an unconstrained-ish space where positive scale
parameters are logged (`log_params`). Adding a law = one subclass + `register`; fitters and the frontier
solver only use this interface.
"""

import numpy as np
from scipy.special import expit

from t2scaling.passk import beta_pass_at_k

LAWS = {}


def register(cls):
    LAWS[cls.name] = cls()
    return cls


def get_law(name):
    if name not in LAWS:
        raise KeyError(f"unknown law {name!r}; known laws: {', '.join(sorted(LAWS))}")
    return LAWS[name]


class Law:
    name = ""
    metric = "loss"  # "loss": lower is better; "accuracy": higher is better
    param_names = ()
    log_params = ()  # optimised as log(value); must be > 0
    uses_k = False

    @property
    def higher_is_better(self):
        return self.metric == "accuracy"

    def predict(self, params, N, D, k=1.0):
        raise NotImplementedError

    def pack(self, params):
        """Natural-parameter dict -> optimisation vector."""
        return np.array([np.log(params[p]) if p in self.log_params else params[p] for p in self.param_names])

    def unpack(self, x):
        """Optimisation vector -> natural-parameter dict (floats)."""
        return {p: float(np.exp(v) if p in self.log_params else v) for p, v in zip(self.param_names, x)}


def _chinchilla_loss(params, N, D):
    """E + A/N^alpha + B/D^beta, evaluated in log space (LSE) so huge N, D never overflow."""
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    terms = np.stack(np.broadcast_arrays(
        np.log(params["A"]) - params["alpha"] * np.log(N),
        np.log(params["B"]) - params["beta"] * np.log(D),
        np.full(np.broadcast(N, D).shape, np.log(params["E"])),
    ))
    return np.exp(np.logaddexp.reduce(terms, axis=0))


@register
class Chinchilla(Law):
    """L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022). Independent of k."""

    name = "chinchilla"
    param_names = ("A", "B", "E", "alpha", "beta")
    log_params = ("A", "B", "E")

    def predict(self, params, N, D, k=1.0):
        out = _chinchilla_loss(params, N, D)
        return np.broadcast_to(out, np.broadcast(out, np.asarray(k, dtype=float)).shape).copy()

    @staticmethod
    def optimum(params, c_train):
        """Closed-form compute-optimal (N*, D*) at C = 6ND FLOPs: N* = G (C/6)^(beta/(alpha+beta))."""
        a, b = params["alpha"], params["beta"]
        G = (a * params["A"] / (b * params["B"])) ** (1.0 / (a + b))
        N = G * (np.asarray(c_train, dtype=float) / 6.0) ** (b / (a + b))
        return N, np.asarray(c_train, dtype=float) / (6.0 * N)


@register
class Approach1(Law):
    """T² Approach 1: mean task loss -log pass@k ~ E + A/N^alpha + B/D^beta + G/k^gamma."""

    name = "approach1"
    param_names = ("A", "B", "E", "alpha", "beta", "G", "gamma")
    log_params = ("A", "B", "E", "G")
    uses_k = True

    def predict(self, params, N, D, k=1.0):
        k = np.asarray(k, dtype=float)
        return _chinchilla_loss(params, N, D) + params["G"] * np.exp(-params["gamma"] * np.log(k))


@register
class Approach2(Law):
    """T² Approach 2: p ~ Beta(mu nu, (1-mu) nu) with links driven by the Chinchilla task-NLL fit L(N, D).

    mu = theta2 * sigmoid(-theta1 (L - theta0)), nu = exp(theta3 + theta4 L); Acc = 1 - B(a, b+k)/B(a, b).
    """

    name = "approach2"
    metric = "accuracy"
    param_names = ("A", "B", "E", "alpha", "beta", "theta0", "theta1", "theta2", "theta3", "theta4")
    log_params = ("A", "B", "E")
    uses_k = True

    @staticmethod
    def beta_params(params, nll):
        """Beta (a, b) of per-question accuracy at predicted task NLL `nll` (nats)."""
        mu = params["theta2"] * expit(-params["theta1"] * (np.asarray(nll, dtype=float) - params["theta0"]))
        # Clipped so extrapolation far outside the fitted range (the planner searches N down to 1e3) stays a
        # proper Beta instead of underflowing to a = 0 or overflowing to inf.
        nu = np.exp(np.clip(params["theta3"] + params["theta4"] * np.asarray(nll, dtype=float), -300.0, 300.0))
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        return mu * nu, (1.0 - mu) * nu

    def predict(self, params, N, D, k=1.0):
        a, b = self.beta_params(params, _chinchilla_loss(params, N, D))
        return beta_pass_at_k(a, b, k)


@register
class NaiveSigmoid(Law):
    """Baseline only: every question shares p = theta2 * sigmoid(-theta1 (L - theta0)); 1 - (1 - p)^k.

    Ignores the spread of question difficulty, so by Jensen it overestimates pass@k at large k.
    """

    name = "naive"
    metric = "accuracy"
    param_names = ("A", "B", "E", "alpha", "beta", "theta0", "theta1", "theta2")
    log_params = ("A", "B", "E")
    uses_k = True

    def predict(self, params, N, D, k=1.0):
        p = params["theta2"] * expit(-params["theta1"] * (_chinchilla_loss(params, N, D) - params["theta0"]))
        k = np.asarray(k, dtype=float)
        return -np.expm1(k * np.log1p(-np.clip(p, 0.0, 1.0 - 1e-15)))

