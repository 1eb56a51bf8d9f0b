"""The learned accuracy predictor: trained mIoU from a network's architecture, with an uncertainty.

Brief training is the ground truth the search cannot afford per trial. The predictor is fitted
to networks that *were* trained (``evit-nas validate`` results, the CamVid study, or the
accuracy-aware loop's rounds) and scores new ones in about a millisecond. It is a proxy like
the others (``--proxy learned`` or ``--proxy learned:FILE``), so the search, the study's record
of its objective and the proxy-quality benchmarks treat it the same way.

The design was chosen by measurement on NAS-Bench-MR's 2,507 fully trained segmentation
networks (``benchmarks/nbmr_objectives.py``): an ensemble of gradient-boosted trees (LightGBM)
on an architecture encoding plus params and MACs ranked held-out networks better than a ridge
regression and than every single zero-cost proxy, from 20 labelled networks up. The members
of the ensemble differ by their row and column subsamples; their spread, scaled so that it
matches the errors of cross-validated predictions, is the uncertainty of a prediction, which
the loop uses to pick networks worth training.

The predictor is a plain JSON record: feature names, the LightGBM models as text, how many
networks it was fitted on, and its cross-validated Kendall tau and Spearman rho (each network
predicted by a fit that did not see it), the honest estimate of how well it ranks networks it
has not seen. It also keeps the networks it was fitted on and what they were trained with
(dataset and recipe), so that the accuracy-aware loop can refit on them plus its own
trainings when its training is the same. ``evit-nas predictor fit RESULTS.csv ... -o FILE`` refits it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from search_space import ArchSpec
from search_space.errors import EvitNasError
from search_space.records import write_atomic

__all__ = ["FEATURES", "FEATURE_CLASSES", "DEFAULT_PREDICTOR", "BOOSTER_PARAMS", "MEMBERS", "CV_FOLDS",
           "ALPHAS", "PredictorError", "Ensemble", "Predictor", "spec_features", "fit_ensemble", "cv_predictions",
           "fit_predictor", "load_predictor", "training_conditions", "uncertainty_scale"]

#: the predictor fitted on the CamVid study, shipped with the package
DEFAULT_PREDICTOR = Path(__file__).with_name("camvid_predictor.json")
#: the features, in order: capacity and compute, then the architecture, stage by stage, and the head
FEATURES = (("log10_params", "log10_macs") + tuple(f"depth_s{i}" for i in range(5))
            + tuple(f"log2_width_s{i}" for i in range(5)) + tuple(f"expand_s{i}" for i in range(1, 5))
            + ("attention_s3", "attention_s4", "scales", "largest_scale", "log2_head_dim", "log2_head_width",
               "head_depth", "head_expand"))
#: params and MACs are counted with this many classes (CamVid's), so that a predictor fitted on
#: one dataset scores networks built for another the same way
FEATURE_CLASSES = 11
#: MACs are counted at this input size (the CamVid training crop): the ranking of networks
#: by MACs barely depends on it
MACS_AT = (192, 256)
#: folds of the cross-validation that scores a fit (leave-one-out below this many networks)
CV_FOLDS = 10


class PredictorError(EvitNasError, ValueError):
    """A predictor that cannot be fitted or read; the message says what to change."""


#: LightGBM settings for a few dozen to a few hundred labelled networks, chosen on NAS-Bench-MR's
#: 2,507 trained segmentation networks (benchmarks/nbmr_objectives.py): shallow trees, leaves of
#: at least 3 networks, row and column subsampling; one thread, so that a search stays predictable
BOOSTER_PARAMS = {"objective": "regression", "n_estimators": 300, "learning_rate": 0.05, "num_leaves": 8,
                  "max_depth": 3, "min_child_samples": 3, "min_data_in_bin": 1, "subsample": 0.8, "subsample_freq": 1,
                  "colsample_bytree": 0.8, "verbose": -1, "n_jobs": 1}
#: members of the ensemble: their spread is the prediction's uncertainty
MEMBERS = 8
#: ridge strengths of the linear base, chosen by leave-one-out (scikit-learn's RidgeCV)
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))


@dataclass(frozen=True)
class Ensemble:
    """A linear base on the capacity columns plus gradient-boosted trees on what it leaves.

    ``mIoU = intercept + base_coef . x[base_columns] + trees(x)``. The linear base (a ridge
    regression on, say, log MACs and log params) carries the trend that holds from very few
    networks; LightGBM's trees, fitted ``MEMBERS`` times with different seeds on the residual,
    add what the architecture explains beyond it. The members differ by their row and column
    subsamples, so where the labelled networks say little (few, or far from the network scored)
    they disagree: :meth:`predict` returns the mean and the members' standard deviation, the
    uncertainty. Plain data: coefficients, and LightGBM's own text format per member (no pickle).
    On NAS-Bench-MR the base lifts Kendall tau at 10, 20 and 50 labelled networks over trees alone.
    """

    base_columns: tuple[int, ...]
    base_coef: tuple[float, ...]
    intercept: float
    boosters: tuple[str, ...]

    @functools.cached_property
    def _models(self) -> list:
        import lightgbm

        return [lightgbm.Booster(model_str=text) for text in self.boosters]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over the members, one of each per row of ``x``."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        base = self.intercept + x[:, list(self.base_columns)] @ np.asarray(self.base_coef)
        values = np.array([model.predict(x, num_threads=1) for model in self._models])
        return base + values.mean(axis=0), values.std(axis=0)


def fit_ensemble(x: np.ndarray, y: np.ndarray, base_columns: Sequence[int] = (0, 1), members: int = MEMBERS,
                 seed: int = 0) -> Ensemble:
    """Fit :class:`Ensemble` on feature rows ``x`` and targets ``y`` (at least 5 rows);
    ``base_columns``: the columns of the linear base."""
    import lightgbm
    from sklearn.linear_model import RidgeCV

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    base_columns = tuple(int(c) for c in base_columns)
    linear = RidgeCV(alphas=ALPHAS).fit(x[:, list(base_columns)], y)
    residual = y - linear.predict(x[:, list(base_columns)])
    boosters = []
    for member in range(members):
        model = lightgbm.LGBMRegressor(**BOOSTER_PARAMS, random_state=seed * 1000 + member).fit(x, residual)
        boosters.append(model.booster_.model_to_string())
    return Ensemble(base_columns, tuple(float(c) for c in linear.coef_), float(linear.intercept_), tuple(boosters))


def spec_features(spec: ArchSpec) -> list[float]:
    """The values of :data:`FEATURES` for ``spec`` (params and MACs from the block caches)."""
    from search_space.cost import count_macs, count_params

    spec = spec.replace(num_classes=FEATURE_CLASSES)  # the body's features, whatever the dataset's classes
    return ([math.log10(count_params(spec)), math.log10(count_macs(spec, MACS_AT))]
            + [float(d) for d in spec.depths] + [math.log2(w) for w in spec.widths]
            + [float(e) for e in spec.expand_ratios]
            + [float(sum(stage)) for stage in spec.attention]
            + [float(len(spec.scales)), float(max(spec.scales, default=0)), math.log2(spec.head_dim),
               math.log2(spec.head_width), float(spec.head_depth), float(spec.head_expand_ratio)])


@dataclass(frozen=True)
class Predictor:
    """A fitted predictor: the mean of an :class:`Ensemble` over :data:`FEATURES`."""

    features: tuple[str, ...]
    base_columns: tuple[int, ...]
    base_coef: tuple[float, ...]
    intercept: float
    boosters: tuple[str, ...]
    networks: int
    cv_kendall: float | None
    cv_spearman: float | None
    source: str = ""
    #: the networks it was fitted on: {"spec": ArchSpec dict, "miou": %}
    training: tuple[dict, ...] = ()
    #: what their mIoU was measured with (:func:`training_conditions`); None if unknown or mixed
    trained_with: dict | None = None
    #: the members' spread times this is the uncertainty (:func:`uncertainty_scale`); 1 in
    #: predictors fitted before it was recorded
    uncertainty_scale: float = 1.0

    @functools.cached_property
    def ensemble(self) -> Ensemble:
        return Ensemble(self.base_columns, self.base_coef, self.intercept, self.boosters)

    def __call__(self, spec: ArchSpec) -> float:
        return float(self.predict([spec])[0][0])

    def predict(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mIoU and its uncertainty (the ensemble's standard deviation times
        ``uncertainty_scale``: mIoU points, about one standard error), per network."""
        mean, spread = self.ensemble.predict(np.array([spec_features(s) for s in specs]))
        return mean, spread * self.uncertainty_scale

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        write_atomic(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")


def cv_predictions(x: np.ndarray, y: np.ndarray, folds: int = CV_FOLDS, seed: int = 0,
                   spread: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Each network predicted by an ensemble fitted without it: leave-one-out up to ``folds``
    networks, else ``folds`` folds drawn at random (seeded). With ``spread``, also the
    members' spread at each held-out network: (means, spreads)."""
    order = np.random.default_rng(seed).permutation(len(y))
    out, std = np.empty(len(y)), np.empty(len(y))
    for part in np.array_split(order, min(folds, len(y))):
        keep = np.setdiff1d(order, part)
        out[part], std[part] = fit_ensemble(x[keep], y[keep], seed=seed).predict(x[part])
    return (out, std) if spread else out


def uncertainty_scale(y: np.ndarray, held_out: np.ndarray, spread: np.ndarray) -> float:
    """What the members' spread must be multiplied by to match the errors of held-out
    predictions: root-mean-square error over root-mean-square spread. The members differ
    only by their subsamples, so their raw spread is far smaller than the real error (on the
    CamVid study, 0.1-0.3 mIoU points against errors of 2-3): unscaled, an upper confidence
    bound barely differs from the mean. 1 when the spread is zero everywhere."""
    rms_spread = float(np.sqrt(np.mean(np.square(spread))))
    rms_error = float(np.sqrt(np.mean(np.square(np.asarray(y) - held_out))))
    return rms_error / rms_spread if rms_spread > 0 else 1.0


def training_conditions(dataset: str, recipe: dict) -> dict:
    """What makes two networks' mIoU comparable: the dataset's kind (``camvid`` of
    ``camvid:PATH``) and the recipe (``Recipe.to_dict()``) but its seed and checkpoint interval."""
    return {"dataset": dataset.partition(":")[0],
            "recipe": {k: v for k, v in recipe.items() if k not in ("seed", "checkpoint_every")}}


def fit_predictor(specs: Sequence[ArchSpec], miou: Sequence[float], source: str = "",
                  trained_with: dict | None = None) -> Predictor:
    """Fit on trained networks; ``cv_kendall`` / ``cv_spearman`` come from :func:`cv_predictions`,
    so they score networks the fit did not see. ``trained_with`` (:func:`training_conditions`)
    is recorded with the networks, for a later refit on them plus new ones.

    Raises:
        PredictorError: fewer than 5 networks, or mismatched lengths.
    """
    from latency_tables.validate import kendall, spearman

    if len(specs) != len(miou):
        raise PredictorError(f"{len(specs)} networks but {len(miou)} mIoU values")
    if len(specs) < 5:
        raise PredictorError(f"{len(specs)} trained network(s): fitting the accuracy predictor needs at least 5; "
                             "validate more networks (evit-nas validate NETWORK ... --dataset ...)")
    x = np.array([spec_features(s) for s in specs])
    y = np.asarray(miou, dtype=float)
    held_out, spread = cv_predictions(x, y, spread=True)
    ensemble = fit_ensemble(x, y)
    return Predictor(FEATURES, ensemble.base_columns, ensemble.base_coef, ensemble.intercept, ensemble.boosters, len(y),
                     round(kendall(held_out, y), 3),
                     round(spearman(held_out, y), 3), source,
                     tuple({"spec": s.to_dict(), "miou": round(float(m), 4)} for s, m in zip(specs, y)), trained_with,
                     round(uncertainty_scale(y, held_out, spread), 4))


def load_predictor(path: str | Path = DEFAULT_PREDICTOR) -> Predictor:
    """Read a predictor JSON written by :meth:`Predictor.save`.

    Raises:
        PredictorError: missing file, damaged JSON, or features of another version.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"accuracy predictor {path} not found; fit one with `evit-nas predictor fit RESULTS.csv "
                             f"-o {path}`")
    try:
        data = json.loads(path.read_text())
        predictor = Predictor(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    except (json.JSONDecodeError, TypeError) as exc:
        raise PredictorError(f"{path} is not an accuracy predictor of this version ({exc}); fit it again with "
                             "`evit-nas predictor fit`") from None
    if predictor.features != FEATURES:
        raise PredictorError(f"{path} uses features {list(predictor.features)}, not this version's {list(FEATURES)}; "
                             "fit it again with `evit-nas predictor fit`")
    return predictor
