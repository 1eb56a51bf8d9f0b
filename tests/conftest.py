import json
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"

#: The official segmentation models (the golden manifest's names).
OFFICIAL = [
    "efficientvit_seg_b0_cityscapes",
    "efficientvit_seg_b1_cityscapes",
    "efficientvit_seg_b2_cityscapes",
    "efficientvit_seg_b3_cityscapes",
    "efficientvit_seg_b1_ade20k",
    "efficientvit_seg_b2_ade20k",
    "efficientvit_seg_b3_ade20k",
]


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((DATA / "state_dict_manifest.json").read_text())


@pytest.fixture(scope="session")
def golden_counts() -> dict:
    return json.loads((DATA / "golden_counts.json").read_text())["models"]


@pytest.fixture(scope="session")
def golden_b0() -> dict:
    return torch.load(DATA / "efficientvit_seg_b0_cityscapes_small.pt", weights_only=True)


def official_name(full: str) -> tuple[str, str]:
    """'efficientvit_seg_b1_ade20k' -> ('efficientvit_seg_b1', 'ade20k')."""
    name, dataset = full.rsplit("_", 1)
    return name, dataset
