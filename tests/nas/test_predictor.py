"""The learned accuracy predictor: fit, leave-one-out honesty, files, and its proxy."""

import json
import math

import pytest

from nas.predictor import FEATURES, PredictorError, fit_predictor, load_predictor, spec_features
from nas.proxy import make_proxy
from search_space import SearchSpace


@pytest.fixture(scope="module")
def networks():
    space = SearchSpace.default()
    return list(dict.fromkeys(space.sample(i) for i in range(14)))


def test_it_learns_a_ranking_that_follows_the_features(networks):
    # a made-up "trained mIoU": more capacity and more attention are better
    miou = [30 + 4 * spec_features(s)[0] + 0.5 * spec_features(s)[-1] for s in networks]
    predictor = fit_predictor(networks, miou)
    assert predictor.networks == len(networks) and predictor.features == FEATURES
    assert predictor.cv_kendall > 0.5  # held-out networks are ranked right
    assert predictor(networks[0]) == pytest.approx(miou[0], abs=1.0)


def test_noise_gives_an_honest_leave_one_out_score(networks):
    import random

    rng = random.Random(0)
    predictor = fit_predictor(networks, [rng.uniform(30, 40) for _ in networks])
    assert abs(predictor.cv_kendall) < 0.5  # nothing to learn, and cross-validation says so


def test_save_load_and_the_learned_proxy(networks, tmp_path):
    miou = [20 + 3 * spec_features(s)[0] for s in networks]
    path = tmp_path / "p.json"
    fit_predictor(networks, miou, source="test").save(path)
    loaded = load_predictor(path)
    proxy = make_proxy(f"learned:{path}", (192, 256))
    assert proxy.name == f"learned:{path}"
    assert proxy(networks[3]) == pytest.approx(loaded(networks[3]))
    assert make_proxy("learned", (192, 256)).name == "learned"  # the shipped CamVid predictor


def test_bad_predictor_input_is_refused(networks, tmp_path):
    with pytest.raises(PredictorError, match="needs at least 5"):
        fit_predictor(networks[:4], [1, 2, 3, 4])
    with pytest.raises(PredictorError, match="not found; fit one with `evit-nas predictor fit"):
        load_predictor(tmp_path / "missing.json")
    damaged = tmp_path / "d.json"
    damaged.write_text("{not json")
    with pytest.raises(PredictorError, match="is not an accuracy predictor"):
        load_predictor(damaged)
    other = tmp_path / "o.json"
    fit_predictor(networks, [math.log(i + 2) for i in range(len(networks))]).save(other)
    data = json.loads(other.read_text())
    data["features"] = ["something_else"]
    other.write_text(json.dumps(data))
    with pytest.raises(PredictorError, match="not this version's"):
        load_predictor(other)


def test_the_default_objective_is_the_same_everywhere():
    from evit_nas.search import DEFAULT_PROXY as CLI_DEFAULT
    from nas.proxy import DEFAULT_PROXY

    assert CLI_DEFAULT == DEFAULT_PROXY == "macs"  # the best measured at 1,000 steps (camvid_proxies_1000steps.json)


def test_uncertainty_is_larger_on_networks_it_was_not_fitted_on(networks):
    miou = [30 + 4 * spec_features(s)[0] + 0.5 * spec_features(s)[-1] for s in networks]
    predictor = fit_predictor(networks, miou)
    unseen = [s for s in (SearchSpace.default().sample(i) for i in range(100, 130)) if s not in networks]
    _, std_seen = predictor.predict(networks)
    mean_unseen, std_unseen = predictor.predict(unseen)
    assert mean_unseen.shape == std_unseen.shape == (len(unseen),)
    assert (std_unseen >= 0).all() and std_unseen.mean() > std_seen.mean()


def test_the_uncertainty_is_scaled_to_the_errors_of_held_out_predictions(networks):
    import random

    import numpy as np

    rng = random.Random(1)
    # a trend plus noise of 2 mIoU points: what the predictor cannot know, its uncertainty must say
    miou = [30 + 4 * spec_features(s)[0] + rng.gauss(0, 2) for s in networks]
    predictor = fit_predictor(networks, miou)
    assert predictor.uncertainty_scale > 1  # the members' raw spread under-states the error
    unseen = [s for s in (SearchSpace.default().sample(i) for i in range(200, 240)) if s not in networks]
    measured = np.array([30 + 4 * spec_features(s)[0] + rng.gauss(0, 2) for s in unseen])  # as training would give
    mean, std = predictor.predict(unseen)
    error = float(np.sqrt(np.mean((mean - measured) ** 2)))
    assert 0.5 * error < float(np.mean(std)) < 2 * error  # the same order as the real error, not a tenth of it
