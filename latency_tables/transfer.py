"""The one fitting method behind every latency prediction: a linear model of a network's
features, fitted to end-to-end measurements by least squares on relative errors, with a
ridge pull towards a prior.

It serves three uses with the same code:

- calibrating a table on its device (features: the table's block latencies summed per block
  kind, the number of blocks, the MB of block inputs, 1; prior: their plain sum);
- adapting a table to a new device from a few measured networks (the same features, read
  from the source device's table; prior: the source calibration, rescaled by the typical
  ratio between the devices);
- transferring per-network latencies between devices when no blocks exist at all, as in
  the NAS-Bench-201 measurements (features: the source device's latency and a few counts of
  the network's operations; prior: the source latency, rescaled).

The prior is what a handful of measurements cannot overturn: with few networks the fit
stays close to "the source, rescaled", and as measurements accumulate the data decide. The
strength of the pull is chosen by leave-one-out cross-validation on the measured networks
when there are enough of them (:func:`fit_transfer`), so no constant is tuned on one device.

End-to-end timings on a phone are sometimes disturbed (a background task, a frequency
drop): on the Samsung A50 of the FBNet measurements about 5% of networks measure 15-55%
slower than an additive model of their blocks fitted on 4,000 networks says. A least-squares
fit on a few dozen networks follows them; ``reject_outliers`` leaves out measured networks
far outside the spread of the others (median absolute deviation) and fits again. Measured
(benchmarks/fbnet_transfer.py: the Raspberry Pi 4's, the Pixel 3's or a Xeon's per-block
table adapted to the A50 from 50 end-to-end timings, 20 draws): MAPE on 1,000 other networks
4.9-5.1% without, 4.1-4.3% with; on the Pixel 2 and the Essential PH-1 (noisy, few gross
outliers) within ±0.15 points either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

__all__ = ["PRIOR_WEIGHTS", "TRUSTED_PRIOR_WEIGHT", "Fit", "fit_linear", "fit_transfer", "relative_errors"]

#: candidate strengths of the pull towards the prior, tried by cross-validation
PRIOR_WEIGHTS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: fewer measured networks than this: no cross-validation, the middle strength
MIN_FOR_CV = 6
#: with ``trusted_prior`` (a fitted model of another device, as when adapting a table), fewer
#: networks than this keep its shape (a pull of TRUSTED_PRIOR_WEIGHT: the data mostly set the
#: speed ratio) unless leave-one-out shows a freer fit at least halving the error. Measured:
#: adapting the Intel table to an AMD EPYC with 3-8 networks, 99-100% of 60 held-out networks
#: within ±10% (plain cross-validation: 78-95%); on NAS-Bench-201 with 4-8 networks, Xeon to
#: Pixel 2 and to another Xeon as good or better than plain cross-validation, Xeon to
#: Raspberry Pi 4 worse (16-22% within ±10% against 25-31%): a device unlike the source
#: needs more networks (README, "Adapting a table to your device").
TRUSTED_MIN_FOR_CV = 10
TRUSTED_PRIOR_WEIGHT = 10.0
#: with ``reject_outliers``: a network whose relative error lies more than OUTLIER_CUT robust
#: standard deviations (1.4826 x the median absolute deviation, at least OUTLIER_FLOOR) from the
#: median error is left out; only from MIN_FOR_OUTLIERS networks, and never more than a
#: quarter of them (more than that says the model is wrong, not the measurements)
OUTLIER_CUT = 3.0
OUTLIER_FLOOR = 0.01
MIN_FOR_OUTLIERS = 10


@dataclass(frozen=True)
class Fit:
    """A fitted linear latency model: ``predicted_ms = features @ coefficients``.

    Attributes:
        coefficients: one per feature column.
        prior_weight: the strength of the pull towards the prior that was used.
        scale: the typical target / prior ratio the prior was rescaled by.
        networks: how many measured networks it was fitted on.
        fit_mape: mean absolute percentage error on those networks (%).
        cv_mape: leave-one-out MAPE (%) at the chosen strength; None without cross-validation.
        outliers: indices (into the networks given) left out as outliers (``reject_outliers``).
    """

    coefficients: np.ndarray
    prior_weight: float
    scale: float
    networks: int
    fit_mape: float
    cv_mape: float | None
    outliers: tuple[int, ...] = ()

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=float) @ self.coefficients


def relative_errors(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """``predicted / measured - 1`` elementwise."""
    return np.asarray(predicted, dtype=float) / np.asarray(measured, dtype=float) - 1


def fit_linear(features: np.ndarray, measured_ms: np.ndarray, prior: np.ndarray, prior_weight: float) -> np.ndarray:
    """Coefficients minimising sum((f.w / m - 1)^2) + prior_weight * n * |(w - prior) * s|^2.

    Columns are rescaled to comparable magnitudes (``s``: a column's mean magnitude over the
    mean latency) so that one weight fits every column; a column that is zero for every
    measured network keeps its prior coefficient.
    """
    x = np.asarray(features, dtype=float)
    measured = np.asarray(measured_ms, dtype=float)
    prior = np.asarray(prior, dtype=float)
    n, d = x.shape
    magnitude = np.abs(x).mean(axis=0)
    column_scale = np.where(magnitude > 0, magnitude, 1.0) / measured.mean()
    design = x / column_scale / measured[:, None]
    target_prior = prior * column_scale
    strength = np.sqrt(prior_weight * n)
    solution = np.linalg.lstsq(np.vstack([design, strength * np.eye(d)]),
                               np.r_[np.ones(n), strength * target_prior], rcond=None)[0] / column_scale
    unused = magnitude == 0
    solution[unused] = prior[unused]
    return solution


def fit_transfer(features: np.ndarray, measured_ms: np.ndarray, prior: np.ndarray, *, rescale_prior: bool = True,
                 prior_weights: Sequence[float] = PRIOR_WEIGHTS, prior_weight: float | None = None,
                 trusted_prior: bool = False, reject_outliers: bool = False) -> Fit:
    """Fit the linear model of :func:`fit_linear`, choosing the pull towards the prior.

    Args:
        features: (networks, columns) features of the measured networks.
        measured_ms: (networks,) their measured latencies.
        prior: (columns,) the coefficients to fall back on (for instance the source device's
            calibration, or 1 on a source-latency column and 0 elsewhere).
        rescale_prior: multiply the prior by the median ratio measured / (features . prior)
            first: another device is mostly a different speed.
        prior_weights: strengths tried by leave-one-out cross-validation (with at least
            ``MIN_FOR_CV`` networks; otherwise the middle one is used).
        prior_weight: use this strength, no cross-validation.
        trusted_prior: the prior is a fitted model of a similar device (another device's
            calibration): below ``TRUSTED_MIN_FOR_CV`` networks it is kept, rescaled, with a
            pull of ``TRUSTED_PRIOR_WEIGHT``, unless (from 3 networks) the leave-one-out
            MAPE of a freer strength is under half of that pull's; ``cv_mape`` reports the
            leave-one-out MAPE of the strength used, so a poor transfer shows (also for a
            ``prior_weight`` given, from 3 networks).
        reject_outliers: from ``MIN_FOR_OUTLIERS`` networks, leave out those whose relative
            error is far outside the others' (see ``OUTLIER_CUT``) and fit again, up to three
            times; ``Fit.outliers`` lists them, ``fit_mape`` and ``cv_mape`` cover the rest.

    Raises:
        ValueError: no networks, mismatched shapes, or non-positive measurements.
    """
    x = np.asarray(features, dtype=float)
    measured = np.asarray(measured_ms, dtype=float)
    prior = np.asarray(prior, dtype=float)
    if x.ndim != 2 or len(x) != len(measured) or len(x) == 0 or x.shape[1] != len(prior):
        raise ValueError(f"fit_transfer: features {x.shape}, measured {measured.shape}, prior {prior.shape} do not match")
    if not np.all(measured > 0):
        raise ValueError("fit_transfer: measured latencies must be positive")
    fit_kept = partial(_fit, prior=prior, rescale_prior=rescale_prior, prior_weights=prior_weights,
                       prior_weight=prior_weight, trusted_prior=trusted_prior)
    fit = fit_kept(x, measured)
    if not reject_outliers or len(x) < MIN_FOR_OUTLIERS:
        return fit
    keep = np.ones(len(x), dtype=bool)
    for _ in range(3):
        errors = relative_errors(fit.predict(x), measured)
        centre = np.median(errors[keep])
        spread = max(1.4826 * float(np.median(np.abs(errors[keep] - centre))), OUTLIER_FLOOR)
        inside = np.abs(errors - centre) <= OUTLIER_CUT * spread
        if np.array_equal(inside, keep) or np.count_nonzero(~inside) > len(x) // 4:
            break
        keep = inside
        fit = fit_kept(x[keep], measured[keep])
    return replace(fit, outliers=tuple(int(i) for i in np.flatnonzero(~keep)))


def _fit(x: np.ndarray, measured: np.ndarray, prior: np.ndarray, *, rescale_prior: bool,
         prior_weights: Sequence[float], prior_weight: float | None, trusted_prior: bool) -> Fit:
    """:func:`fit_transfer` on validated arrays, every network kept."""
    scale = 1.0
    if rescale_prior:
        baseline = x @ prior
        ok = baseline > 0
        scale = float(np.median(measured[ok] / baseline[ok])) if ok.any() else 1.0
    prior = prior * scale
    cv_mape = None
    if prior_weight is None and trusted_prior and len(x) < TRUSTED_MIN_FOR_CV:
        prior_weight = TRUSTED_PRIOR_WEIGHT
        if len(x) >= 3:
            cv_mape = _loo_mape(x, measured, prior, prior_weight)
            weight, score = _cross_validated(x, measured, prior, prior_weights)
            if score < cv_mape / 2:  # the data clearly reject the source's shape
                prior_weight, cv_mape = weight, score
    elif prior_weight is not None and trusted_prior and len(x) >= 3:  # a fixed pull still reports its LOO error
        cv_mape = _loo_mape(x, measured, prior, prior_weight)
    if prior_weight is None:
        if len(x) >= MIN_FOR_CV:
            prior_weight, cv_mape = _cross_validated(x, measured, prior, prior_weights)
        else:
            prior_weight = float(sorted(prior_weights)[len(prior_weights) // 2])
    coefficients = fit_linear(x, measured, prior, prior_weight)
    fit_mape = float(np.mean(np.abs(relative_errors(x @ coefficients, measured))) * 100)
    return Fit(coefficients, prior_weight, scale, len(x), round(fit_mape, 3),
               None if cv_mape is None else round(cv_mape, 3))


def _cross_validated(x: np.ndarray, measured: np.ndarray, prior: np.ndarray,
                     weights: Sequence[float]) -> tuple[float, float]:
    """The strength of lowest leave-one-out MAPE, and that MAPE (%)."""
    scores = [_loo_mape(x, measured, prior, w) for w in weights]
    best = int(np.argmin(scores))
    return float(weights[best]), float(scores[best])


def _loo_mape(x: np.ndarray, measured: np.ndarray, prior: np.ndarray, weight: float) -> float:
    errors = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        coefficients = fit_linear(x[keep], measured[keep], prior, weight)
        errors.append(abs(float(x[i] @ coefficients) / measured[i] - 1))
    return float(np.mean(errors) * 100)
