"""The law registry: Approach 2's one link (mu, nu from theta and task NLL) shared by fitting and prediction."""

import numpy as np

from t2scaling import fit
from t2scaling.laws import LOG_NU_RANGE, approach2_link, get_law

THETA = np.array([[3.0, 2.0, 0.9, 1.5, -0.2], [2.5, 1.0, 0.6, 24.0, 2.0], [3.0, 40.0, 1.0, -29.0, -1.5]])
NLL = np.array([0.5, 1.5, 2.5, 3.5])


def params_of(theta):
    return dict(A=50.0, B=200.0, E=1.0, alpha=0.3, beta=0.28, **{f"theta{i}": t for i, t in enumerate(theta)})


def test_fitter_and_prediction_share_the_link_and_its_clip():
    a, b, _, _, valid = fit.objectives._beta_ab(THETA, NLL)
    for row, theta in enumerate(THETA):
        pa, pb = get_law("approach2").beta_params(params_of(theta), NLL)
        np.testing.assert_array_equal(a[row], pa)
        np.testing.assert_array_equal(b[row], pb)
    log_nu = THETA[:, 3:4] + THETA[:, 4:5] * NLL
    # the fitter walls rows where some point's log nu is clipped, so a fit never rests on the clip ...
    np.testing.assert_array_equal(valid, np.all((log_nu >= LOG_NU_RANGE[0]) & (log_nu <= LOG_NU_RANGE[1]), axis=1))
    assert valid.tolist() == [True, False, False]
    # ... and prediction clips extrapolations to the same range
    np.testing.assert_allclose(np.log(a[1] + b[1]), np.clip(log_nu[1], *LOG_NU_RANGE), rtol=1e-14)


def test_link_derivatives_match_finite_differences():
    theta = THETA[0]
    mu, nu, dmu, dnu, inside = approach2_link(theta, NLL, derivatives=True)
    assert inside.all()
    for j in range(5):
        step = np.zeros(5)
        step[j] = 1e-6
        up, down = approach2_link(theta + step, NLL), approach2_link(theta - step, NLL)
        np.testing.assert_allclose(dmu[j], (up[0] - down[0]) / 2e-6, rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(dnu[j], (up[1] - down[1]) / 2e-6, rtol=1e-6, atol=1e-10)


def test_prediction_is_finite_and_ordered_across_the_whole_precision_range():
    law = get_law("approach2")
    N, D = np.array([1e3, 1e7, 1e12])[:, None], 1e10
    for theta3 in (-60.0, -30.0, 0.0, 29.0, 60.0):  # beyond the range both ends: clipped, still a proper Beta
        acc = law.predict(params_of([3.0, 2.0, 0.9, theta3, 0.0]), N, D, np.array([1.0, 10.0, 1e6]))
        assert np.all(np.isfinite(acc)) and np.all((acc >= 0) & (acc <= 1))
        assert np.all(np.diff(acc, axis=1) >= 0)  # pass@k grows with k
