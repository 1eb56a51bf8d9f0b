import copy
import math

import pytest
import torch
from torch import nn

from nas import zero_cost
from nas.zero_cost import ZERO_COST_PROXIES, compute_proxies
from search_space import build_model
from search_space.registry import model_spec

CLASSES = 5


class TinySeg(nn.Module):
    """Conv-BN-ReLU x2 and a 1x1 classifier; logits at stride 2 (the loss resizes them)."""

    def __init__(self, width: int = 8, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def tiny(width: int = 8, depth: int = 2, seed: int = 0) -> TinySeg:
    torch.manual_seed(seed)
    return TinySeg(width, depth)


def batch(n: int = 4, size: tuple[int, int] = (16, 32), seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, *size, generator=generator)
    labels = torch.randint(0, CLASSES, (n, *size), generator=generator)
    labels[:, :2] = 255  # a band of void pixels, ignored by the loss
    return images, labels


@pytest.mark.parametrize("name", list(ZERO_COST_PROXIES))
def test_every_proxy_is_finite_and_deterministic(name):
    images, labels = batch()
    first = ZERO_COST_PROXIES[name](tiny(), images, labels)
    second = ZERO_COST_PROXIES[name](tiny(), images, labels)
    assert isinstance(first, float) and math.isfinite(first)
    assert first == second


def test_the_model_is_left_as_it_was():
    model = tiny().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = batch()
    compute_proxies(model, images, labels)
    assert not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch-norm statistics included
    assert all(p.grad is None for p in model.parameters())


def test_shared_passes_give_the_single_functions_values():
    images, labels = batch()
    values, seconds = compute_proxies(tiny(), images, labels)
    assert list(values) == list(ZERO_COST_PROXIES)
    assert set(seconds) == {"naswot+jacov", "synflow", "snip+grad_norm+fisher", "zen", "zico"}
    for name, function in ZERO_COST_PROXIES.items():
        assert values[name] == pytest.approx(function(tiny(), images, labels), rel=1e-9), name
    subset, seconds = compute_proxies(tiny(), images, labels, ["fisher", "naswot"])
    assert list(subset) == ["fisher", "naswot"] and set(seconds) == {"naswot", "fisher"}


def test_synflow_is_the_conserved_flow_times_the_layer_count():
    # Tanaka et al.: in a network without biases and batch norms the synaptic saliency of each
    # layer sums to R, the output of the all-ones input with |weights|; so the total is layers x R
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(6, 4, 3, stride=2, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(4, CLASSES, 1, bias=False))
    positive = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in positive.parameters():
            p.abs_()
        flow = float(positive(torch.ones(1, 3, 8, 8, dtype=torch.float64)).sum())
    assert zero_cost.synflow(model, torch.zeros(2, 3, 8, 8)) == pytest.approx(math.log10(3 * flow), rel=1e-12)


def test_synflow_grows_with_width_and_ignores_the_data():
    images, _ = batch()
    scores = [zero_cost.synflow(tiny(width), images) for width in (4, 8, 16, 32)]
    assert scores == sorted(scores) and scores[-1] > scores[0] + 0.5  # log10 units: 4.3 -> 5.3
    assert zero_cost.synflow(tiny(), images) == zero_cost.synflow(tiny(), torch.rand_like(images))


def test_naswot_kernel_properties():
    images, _ = batch(n=6)
    score = zero_cost.naswot(tiny(), images)
    # log|K| does not depend on the order of the images (K -> P K P^T)
    assert zero_cost.naswot(tiny(), images[torch.tensor([5, 3, 1, 0, 2, 4])]) == pytest.approx(score, rel=1e-12)
    # conv without bias then batch norm (training mode): a positive scale of the input changes no code
    assert zero_cost.naswot(tiny(), 3.0 * images) == pytest.approx(score, rel=1e-12)
    # two identical images have identical codes: K is singular
    assert zero_cost.naswot(tiny(), torch.cat([images[:3], images[:1]])) == float("-inf")
    # only the listed unit types count: without any, K is all zeros
    assert zero_cost.naswot(tiny(), images, activations=(nn.GELU,)) == float("-inf")


def test_jacov_is_at_most_minus_the_batch_size():
    # -(log v + 1/v) <= -1 for every eigenvalue v, with equality for uncorrelated Jacobians
    images, _ = batch(n=6)
    score = zero_cost.jacov(tiny(), images)
    assert -6.5 < score <= -6.0 + 1e-6
    with pytest.raises(ValueError, match="at least two"):
        zero_cost.jacov(tiny(), images[:1])


def test_loss_proxies_use_the_labels_and_need_them():
    images, labels = batch()
    other = torch.randint(0, CLASSES, labels.shape, generator=torch.Generator().manual_seed(7))
    for name in ("snip", "grad_norm", "fisher", "zico"):
        assert ZERO_COST_PROXIES[name](tiny(), images, labels) != ZERO_COST_PROXIES[name](tiny(), images, other), name
        with pytest.raises(ValueError, match="needs labels"):
            ZERO_COST_PROXIES[name](tiny(), images, None)


def test_zico_leaves_out_weights_whose_gradient_does_not_vary():
    images, labels = batch(n=2)
    twice = torch.cat([images, images]), torch.cat([labels, labels])
    assert zero_cost.zico(tiny(), *twice) == 0.0  # both halves give the same gradient: nothing counts
    assert zero_cost.zico(tiny(), *batch(n=4)) > 0
    with pytest.raises(ValueError, match="splits"):
        zero_cost.zico(tiny(), images[:1], labels[:1])


def test_zen_is_data_free_and_seeded():
    images, _ = batch()
    score = zero_cost.zen(tiny(), images)
    assert zero_cost.zen(tiny(), torch.rand_like(images)) == score
    assert zero_cost.zen(tiny(), images, seed=1) != score
    assert zero_cost.zen(tiny(width=32), images) > score  # more channels, larger perturbation response


def test_dict_and_tuple_outputs_are_accepted():
    class Wrapped(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.inner, self.kind = tiny(), kind

        def forward(self, x: torch.Tensor) -> object:
            out = self.inner(x)
            return {"out": out} if self.kind == "dict" else (out, out.mean())

    images, labels = batch()
    plain, _ = compute_proxies(tiny(), images, labels)
    for kind in ("dict", "tuple"):
        wrapped, _ = compute_proxies(Wrapped(kind), images, labels)
        assert wrapped == pytest.approx(plain, rel=1e-9)


def test_unknown_proxy_lists_the_known_ones():
    images, labels = batch()
    with pytest.raises(ValueError) as info:
        compute_proxies(tiny(), images, labels, ["naswot", "grasp"])
    assert "grasp" in str(info.value) and all(name in str(info.value) for name in ZERO_COST_PROXIES)


def test_every_proxy_runs_on_a_network_of_the_search_space():
    torch.manual_seed(0)
    model = build_model(model_spec("efficientvit_seg_b0", "cityscapes"))
    images = torch.randn(4, 3, 64, 128)
    labels = torch.randint(0, 19, (4, 64, 128))
    values, _ = compute_proxies(model, images, labels)
    assert all(math.isfinite(v) for v in values.values()), values
