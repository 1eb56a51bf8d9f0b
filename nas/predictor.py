"""A learned accuracy predictor: trained mIoU from a few explainable features of a network.

Brief training is the ground truth the search cannot afford per trial; a ridge regression
on a handful of ArchSpec features, fitted to networks that *were* trained (``evit-nas
validate`` results, or the CamVid study), ranks new networks in microseconds. It is a proxy
like the others (``--proxy learned`` or ``--proxy learned:FILE``), so the search, the study's
record of its objective and the proxy-quality benchmarks treat it the same way.

The predictor is a plain JSON record: feature names, their mean and spread on the training
networks, one coefficient each, the ridge strength (chosen by leave-one-out), and the
leave-one-out Kendall tau, the honest estimate of how well it ranks networks it has not
seen. ``evit-nas predictor fit RESULTS.csv ... -o FILE`` refits it as validations accumulate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from search_space import ArchSpec
from search_space.errors import EvitNasError
from search_space.records import write_atomic

__all__ = ["FEATURES", "ALPHAS", "FEATURE_CLASSES", "DEFAULT_PREDICTOR", "PredictorError", "Predictor", "spec_features",
           "fit_predictor", "load_predictor", "loo_predictions", "nested_loo_predictions"]

#: the predictor fitted on the CamVid test-retest study, shipped with the package
DEFAULT_PREDICTOR = Path(__file__).with_name("camvid_predictor.json")
#: ridge strengths tried by leave-one-out (on standardised features)
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: the features, in order: capacity and compute, depth where attention lives, width, context
FEATURES = ("log10_params", "log10_macs", "depth", "attention_stage_depth", "log2_last_width", "attention_blocks",
            "scales", "head_width_log2", "head_depth")
#: params and MACs are counted with this many classes (CamVid's), so that a predictor fitted on
#: one dataset scores networks built for another the same way
FEATURE_CLASSES = 11
#: MACs are counted at this input size (the CamVid training crop): the ranking of networks
#: by MACs barely depends on it
MACS_AT = (192, 256)


class PredictorError(EvitNasError, ValueError):
    """A predictor that cannot be fitted or read; the message says what to change."""


def spec_features(spec: ArchSpec) -> list[float]:
    """The values of :data:`FEATURES` for ``spec`` (params and MACs from the block caches)."""
    from search_space.cost import count_macs, count_params

    spec = spec.replace(num_classes=FEATURE_CLASSES)  # the body's features, whatever the dataset's classes
    attention = [flag for stage in spec.attention for flag in stage]
    return [math.log10(count_params(spec)), math.log10(count_macs(spec, MACS_AT)), float(sum(spec.depths)),
            float(sum(spec.depths[-2:])), math.log2(spec.widths[-1]), float(sum(attention)), float(len(spec.scales)),
            math.log2(spec.head_width), float(spec.head_depth)]


@dataclass(frozen=True)
class Predictor:
    """A fitted predictor: ``miou = intercept + sum(coef * (feature - mean) / std)``."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float
    alpha: float
    networks: int
    loo_kendall: float | None
    loo_spearman: float | None
    source: str = ""

    def __call__(self, spec: ArchSpec) -> float:
        return self.predict_features(spec_features(spec))

    def predict_features(self, values: Sequence[float]) -> float:
        z = (np.asarray(values, dtype=float) - self.mean) / self.std
        return float(self.intercept + z @ np.asarray(self.coefficients))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        write_atomic(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")


def _ridge(z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    intercept = float(y.mean())
    coefficients = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - intercept))
    return coefficients, intercept


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def _fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardise ``x`` and fit the ridge: (mean, std, coefficients, intercept)."""
    mean, std = _standardise(x)
    coefficients, intercept = _ridge((x - mean) / std, y, alpha)
    return mean, std, coefficients, intercept


def _predict_left_out(x: np.ndarray, y: np.ndarray, i: int, alpha: float) -> float:
    keep = np.arange(len(y)) != i
    mean, std, coefficients, intercept = _fit(x[keep], y[keep], alpha)
    return float(intercept + ((x[i] - mean) / std) @ coefficients)


def loo_predictions(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Leave-one-out predictions: each network predicted by a fit on the others."""
    return np.array([_predict_left_out(x, y, i, alpha) for i in range(len(y))])


def _choose_alpha(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> float:
    errors = [float(np.mean((loo_predictions(x, y, a) - y) ** 2)) for a in alphas]
    return float(alphas[int(np.argmin(errors))])


def nested_loo_predictions(x: np.ndarray, y: np.ndarray, alphas: Sequence[float] = ALPHAS) -> np.ndarray:
    """Leave-one-out predictions where the ridge strength, too, is chosen without the
    network left out (by leave-one-out on the others): an honest score of the whole fit."""
    alphas_without = [_choose_alpha(np.delete(x, i, axis=0), np.delete(y, i), alphas) for i in range(len(y))]
    return np.array([_predict_left_out(x, y, i, alpha) for i, alpha in enumerate(alphas_without)])


def fit_predictor(specs: Sequence[ArchSpec], miou: Sequence[float], source: str = "",
                  alphas: Sequence[float] = ALPHAS) -> Predictor:
    """Fit on trained networks; the ridge strength minimises the leave-one-out squared error.
    ``loo_kendall`` / ``loo_spearman`` come from nested leave-one-out (the strength chosen
    again without each network), so they are not flattered by that choice.

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
    alpha = _choose_alpha(x, y, alphas)
    loo = nested_loo_predictions(x, y, alphas)
    mean, std, coefficients, intercept = _fit(x, y, alpha)
    return Predictor(FEATURES, tuple(mean.tolist()), tuple(std.tolist()), tuple(coefficients.tolist()), intercept,
                     alpha, len(y), round(kendall(loo, y), 3), round(spearman(loo, y), 3), source)


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
        raise PredictorError(f"{path} is not an accuracy predictor ({exc}); fit it again with `evit-nas predictor "
                             "fit`") from None
    if predictor.features != FEATURES:
        raise PredictorError(f"{path} uses features {list(predictor.features)}, not this version's {list(FEATURES)}; "
                             "fit it again with `evit-nas predictor fit`")
    return predictor
