"""The law registry: every scaling law the project fits, as one small class each (DESIGN.md §2.3–2.5).

A law maps (N params, D tokens, k samples) to a predicted metric. Parameters are stored by *natural* name
(A, B, E, alpha, ...) in fit JSON; optimisers work in an unconstrained-ish space where positive scale
parameters are logged (`log_params`). Adding a law = one subclass + `register`; fitters and the frontier
solver only use this interface.
"""

import numpy as np
from scipy.special import expit

from t2scaling import flops
from t2scaling.passk import beta_pass_at_k, pass_at_k_exact

LAWS = {}
T2_LAWS = ("approach1", "approach2")  # the paper's two Train-to-Test laws, in the order panels and plans show them
# Where no Chinchilla fit exists, the k = 1 form of these stands in for it, in this order of preference (each
# holds a Chinchilla L(N, D) of its own: Approach 2's stage 1, Approach 1's loss at k -> infinity).
CHINCHILLA_STAND_INS = ("approach2", "approach1")
# Whose Chinchilla optimum a table or figure quotes when several laws are at hand: the Chinchilla fit itself, else
# a stand-in.
CHINCHILLA_PREFERENCE = ("chinchilla", *CHINCHILLA_STAND_INS)


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
    variants = ()  # the fits `t2scaling.fit` offers for it, the default first; () = not fitted (a baseline)
    # Its k = 1 form is a monotone function of Chinchilla's L(N, D) of its own A, B, E, alpha, beta, so its
    # Chinchilla-optimal allocation has Chinchilla's closed form (frontier.chinchilla_baseline).
    k1_is_chinchilla = False

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
    k1_is_chinchilla = True
    param_names = ("A", "B", "E", "alpha", "beta")
    log_params = ("A", "B", "E")
    variants = ("huber", "profile_e")

    def predict(self, params, N, D, k=1.0):
        out = _chinchilla_loss(params, N, D)
        return np.broadcast_to(out, np.broadcast(out, np.asarray(k, dtype=float)).shape).copy()

    @staticmethod
    def optimum(params, c_train):
        """Closed-form compute-optimal (N*, D*) at C = 6ND FLOPs: N* = G (C/6)^(beta/(alpha+beta))."""
        a, b = params["alpha"], params["beta"]
        G = (a * params["A"] / (b * params["B"])) ** (1.0 / (a + b))
        N = G * (np.asarray(c_train, dtype=float) / 6.0) ** (b / (a + b))
        return N, flops.tokens_at(np.asarray(c_train, dtype=float), N)


@register
class Approach1(Law):
    """T² Approach 1: mean task loss -log pass@k ~ E + A/N^alpha + B/D^beta + G/k^gamma."""

    name = "approach1"
    k1_is_chinchilla = True
    param_names = ("A", "B", "E", "alpha", "beta", "G", "gamma")
    log_params = ("A", "B", "E", "G")
    uses_k = True
    variants = ("sse",)

    def predict(self, params, N, D, k=1.0):
        k = np.asarray(k, dtype=float)
        return _chinchilla_loss(params, N, D) + params["G"] * np.exp(-params["gamma"] * np.log(k))


# One link policy for fitting and prediction. mu is kept off 0 and 1 so Beta(a, b) stays proper. log nu is
# clipped to +-30 (the fitter's window was [-30, 20] only because betaln differences failed above nu ~ 5e8):
# beyond, Beta(mu nu, (1 - mu) nu) is its limit for any data (nu = e^-30 ~ 1e-13: mass mu at 1 and 1 - mu at 0,
# pass@k = mu to ~1e-13 ln k; nu = e^30 ~ 1e13: spread < 2e-7 around mu, pass@k = 1 - (1 - mu)^k to ~k^2/nu), and
# passk.beta_pass_at_k is tested accurate over the whole range. The fitter walls the objective where any fitted
# point would be clipped, so a fit never rests on the clip; prediction clips extrapolations the same way.
MU_RANGE = (1e-12, 1.0 - 1e-12)
LOG_NU_RANGE = (-30.0, 30.0)


def approach2_link(theta, nll, derivatives=False):
    """Beta mean mu and precision nu of per-question accuracy at task NLL `nll` (nats) (DESIGN.md §2.5):
    mu = theta2 sigmoid(-theta1 (nll - theta0)), nu = exp(theta3 + theta4 nll), clipped to MU_RANGE and
    LOG_NU_RANGE. theta: 5 arrays (or floats) broadcasting against nll.

    derivatives=True also returns d mu/d theta and d nu/d theta, stacked (5, ...) (zero where clipped), and
    `inside`: where log nu lies within LOG_NU_RANGE.
    """
    t0, t1, t2, t3, t4 = (np.asarray(t, dtype=float) for t in theta)
    nll = np.asarray(nll, dtype=float)
    s = expit(-t1 * (nll - t0))
    raw = t2 * s
    mu = np.clip(raw, *MU_RANGE)
    log_nu = t3 + t4 * nll
    nu = np.exp(np.clip(log_nu, *LOG_NU_RANGE))
    if not derivatives:
        return mu, nu
    free = mu == raw
    inside = (log_nu >= LOG_NU_RANGE[0]) & (log_nu <= LOG_NU_RANGE[1])
    ds = t2 * s * (1 - s) * free
    zero = np.zeros_like(mu)
    dmu = np.stack(np.broadcast_arrays(ds * t1, -ds * (nll - t0), s * free, zero, zero))
    dnu = np.stack(np.broadcast_arrays(zero, zero, zero, nu * inside, nu * nll * inside))
    return mu, nu, dmu, dnu, inside


@register
class Approach2(Law):
    """T² Approach 2: p ~ Beta(mu nu, (1-mu) nu) with links driven by the Chinchilla task-NLL fit L(N, D).

    mu = theta2 * sigmoid(-theta1 (L - theta0)), nu = exp(theta3 + theta4 L); Acc = 1 - B(a, b+k)/B(a, b).
    """

    name = "approach2"
    metric = "accuracy"
    k1_is_chinchilla = True
    param_names = ("A", "B", "E", "alpha", "beta", "theta0", "theta1", "theta2", "theta3", "theta4")
    log_params = ("A", "B", "E")
    uses_k = True
    variants = ("sse", "likelihood")

    @staticmethod
    def beta_params(params, nll):
        """Beta (a, b) of per-question accuracy at predicted task NLL `nll` (nats), via `approach2_link`."""
        mu, nu = approach2_link([params[f"theta{i}"] for i in range(5)], nll)
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
    k1_is_chinchilla = True
    param_names = ("A", "B", "E", "alpha", "beta", "theta0", "theta1", "theta2")
    log_params = ("A", "B", "E")
    uses_k = True

    def predict(self, params, N, D, k=1.0):
        p = params["theta2"] * expit(-params["theta1"] * (_chinchilla_loss(params, N, D) - params["theta0"]))
        return pass_at_k_exact(np.clip(p, 0.0, 1.0 - 1e-15), k)



def beta_chinchilla_ab(params, N, D):
    """Beta (a, b) of per-question accuracy for `BetaChinchilla` at N params, D tokens: mean mu = exp(-L(N, D)),
    precision nu = exp(nu0) L^nu1, both clipped as Approach 2's links are (MU_RANGE, LOG_NU_RANGE)."""
    L = _chinchilla_loss(params, N, D)
    mu = np.clip(np.exp(-L), *MU_RANGE)
    nu = np.exp(np.clip(params["nu0"] + params["nu1"] * np.log(L), *LOG_NU_RANGE))
    return mu * nu, (1.0 - mu) * nu


@register
class BetaChinchilla(Law):
    """Per-question accuracy p ~ Beta(mu nu, (1 - mu) nu) whose parameters scale with N and D (after Schaeffer et
    al. 2025, who find pass@k's power law in k comes from the left tail of the per-question p distribution).

    mu = exp(-L(N, D)) with L = E + A/N^alpha + B/D^beta (nats; the mean pass@1 saturates at exp(-E)), and
    nu = exp(nu0) L^nu1. pass@k = 1 - B(a, b + k)/B(a, b). All seven parameters are fitted jointly by maximum
    likelihood of the per-question data (`t2scaling.fit.beta`), not through a separate NLL fit.
    """

    name = "beta_chinchilla"
    metric = "accuracy"
    k1_is_chinchilla = True
    param_names = ("A", "B", "E", "alpha", "beta", "nu0", "nu1")
    log_params = ("A", "B", "E")
    uses_k = True
    variants = ("likelihood",)

    def predict(self, params, N, D, k=1.0):
        a, b = beta_chinchilla_ab(params, N, D)
        return beta_pass_at_k(a, b, k)
