"""The one fitting method: relative least squares pulled towards a rescaled prior."""

import numpy as np
import pytest

from latency_tables.transfer import MIN_FOR_CV, PRIOR_WEIGHTS, fit_transfer


def _data(n, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    x = np.c_[rng.uniform(5, 50, n), rng.integers(0, 6, n), np.ones(n)]
    true = np.array([1.8, 0.7, 2.0])  # another device: 1.8x slower, plus per-operation and fixed costs
    return x, (x @ true) * (1 + noise * rng.standard_normal(n))


def test_many_clean_measurements_recover_the_target_model():
    x, y = _data(200)
    fit = fit_transfer(x, y, np.array([1.0, 0.0, 0.0]))
    assert fit.coefficients == pytest.approx([1.8, 0.7, 2.0], rel=2e-2)
    assert fit.cv_mape is not None and fit.cv_mape < 1 and fit.prior_weight == min(PRIOR_WEIGHTS)


def test_few_measurements_stay_close_to_the_rescaled_prior():
    x, y = _data(MIN_FOR_CV - 1, seed=3)
    fit = fit_transfer(x, y, np.array([1.0, 0.0, 0.0]))
    assert fit.cv_mape is None  # too few to cross-validate
    assert fit.scale == pytest.approx(np.median(y / x[:, 0]))
    assert fit.prior_weight == sorted(PRIOR_WEIGHTS)[len(PRIOR_WEIGHTS) // 2]  # the documented middle strength
    new_x, new_y = _data(100, seed=9)
    assert np.mean(np.abs(fit.predict(new_x) / new_y - 1)) < 0.15  # still a sound prediction of other networks


def test_noise_makes_cross_validation_choose_a_stronger_pull():
    x, y = _data(12, seed=1, noise=0.15)
    noisy = fit_transfer(x, y, np.array([1.0, 0.0, 0.0]))
    clean = fit_transfer(*_data(12, seed=1), np.array([1.0, 0.0, 0.0]))
    assert noisy.prior_weight > clean.prior_weight


def test_bad_input_is_refused():
    x, y = _data(8)
    with pytest.raises(ValueError, match="do not match"):
        fit_transfer(x, y[:-1], np.zeros(3))
    with pytest.raises(ValueError, match="positive"):
        fit_transfer(x, -y, np.zeros(3))


def test_a_trusted_prior_keeps_its_shape_with_few_networks():
    from latency_tables.transfer import TRUSTED_MIN_FOR_CV, TRUSTED_PRIOR_WEIGHT

    x, y = _data(TRUSTED_MIN_FOR_CV - 2, seed=4, noise=0.05)
    prior = np.array([1.8, 0.7, 2.0]) / 1.3  # the right shape at another speed
    trusted = fit_transfer(x, y, prior, trusted_prior=True)
    assert trusted.prior_weight == TRUSTED_PRIOR_WEIGHT and trusted.cv_mape is not None  # LOO still reported
    assert trusted.coefficients == pytest.approx(prior * trusted.scale, rel=0.1)  # the prior's shape, rescaled
    untrusted = fit_transfer(x, y, prior)  # cross-validated as before: 8 noisy networks pull it off
    assert untrusted.prior_weight in PRIOR_WEIGHTS
    shape_error = lambda fit: np.abs(fit.coefficients / (prior * fit.scale) - 1).max()  # noqa: E731
    assert shape_error(trusted) < shape_error(untrusted)
    many = fit_transfer(*_data(TRUSTED_MIN_FOR_CV, seed=4), prior, trusted_prior=True)
    assert many.prior_weight in PRIOR_WEIGHTS  # enough networks: the data decide


def test_disturbed_timings_are_left_out_on_request():
    from latency_tables.transfer import MIN_FOR_OUTLIERS

    x, y = _data(40, seed=5, noise=0.01)
    slow = [3, 17, 29]  # runs disturbed by something else on the device: 40-60% slower
    y = y.copy()
    y[slow] *= [1.4, 1.6, 1.5]
    plain = fit_transfer(x, y, np.array([1.0, 0.0, 0.0]))
    robust = fit_transfer(x, y, np.array([1.0, 0.0, 0.0]), reject_outliers=True)
    assert plain.outliers == () and robust.outliers == tuple(slow)
    assert robust.networks == 40 - len(slow)
    truth = np.array([1.8, 0.7, 2.0])
    assert np.abs(robust.coefficients / truth - 1).max() < 0.1 < np.abs(plain.coefficients / truth - 1).max()
    clean = fit_transfer(*_data(40, seed=5, noise=0.01), np.array([1.0, 0.0, 0.0]), reject_outliers=True)
    assert len(clean.outliers) <= 1  # ordinary noise is kept
    few = fit_transfer(x[:MIN_FOR_OUTLIERS - 1], y[:MIN_FOR_OUTLIERS - 1], np.array([1.0, 0.0, 0.0]), reject_outliers=True)
    assert few.outliers == ()  # too few networks to tell a disturbed run from the spread
