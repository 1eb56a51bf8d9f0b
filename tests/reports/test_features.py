"""The feature table's computations: the complexity exponent and the effective receptive
field, on networks whose answers are known."""

import pytest
import torch
from torch import nn

from reports.features import fit_exponent, erf_shares


def test_exponent_of_power_laws():
    pixels = [128 * 256, 256 * 512, 512 * 1024]
    assert fit_exponent(pixels, [3e-6 * p for p in pixels]) == pytest.approx(1.0)
    assert fit_exponent(pixels, [1e-9 * p * p for p in pixels]) == pytest.approx(2.0)
    assert fit_exponent(pixels, [5.0 + 1e-6 * p for p in pixels]) < 1.0  # a fixed cost flattens the slope
    with pytest.raises(ValueError, match="at least 2"):
        fit_exponent([1.0], [1.0])
    with pytest.raises(ValueError, match="must differ"):
        fit_exponent([4.0, 4.0], [1.0, 2.0])


def test_erf_of_one_3x3_convolution_is_its_window():
    conv = nn.Conv2d(3, 2, 3, padding=1)
    torch.manual_seed(0)
    nn.init.uniform_(conv.weight, 0.5, 1.0)  # every tap non-negligible
    share_1pct, share_tiny = erf_shares(conv, (32, 64))
    assert share_1pct == pytest.approx(9 / (32 * 64)) and share_tiny == pytest.approx(9 / (32 * 64))


class GlobalMix(nn.Module):
    """A 1x1 convolution plus the image mean: every pixel reaches every output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.conv(x) + self.conv(x).mean(dim=(2, 3), keepdim=True)


def test_erf_of_a_global_path_covers_the_image_at_a_low_threshold():
    torch.manual_seed(0)
    share_1pct, share_tiny = erf_shares(GlobalMix(), (32, 32))
    # the centre pixel's own weight is 1 + 1/1024, every other pixel's 1/1024 (below 1%, above 0.01%)
    assert share_1pct == pytest.approx(1 / 1024) and share_tiny == 1.0


def test_erf_needs_a_segmentation_output():
    with pytest.raises(ValueError, match="segmentation network"):
        erf_shares(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), (32, 32))
