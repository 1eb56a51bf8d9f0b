import math

import pytest

from nas.proxy import PROXIES, make_proxy
from search_space.registry import model_spec


@pytest.mark.parametrize("name", ["naswot", "synflow"])
def test_training_free_proxies_are_deterministic_and_finite(name):
    b0 = model_spec("efficientvit_seg_b0", "cityscapes")
    first, second = make_proxy(name, (64, 128)), make_proxy(name, (64, 128))
    score = first(b0)
    assert math.isfinite(score) and score == second(b0)


def test_synflow_grows_with_the_network():
    proxy = make_proxy("synflow", (64, 128))
    b0, b1 = model_spec("efficientvit_seg_b0", "cityscapes"), model_spec("efficientvit_seg_b1", "cityscapes")
    assert proxy(b1) > proxy(b0) + 5  # log10 units: many more paths of larger weights


def test_unknown_proxy_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        make_proxy("zen", (64, 128))
    assert all(name in str(info.value) for name in PROXIES)
