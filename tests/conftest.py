import json
from pathlib import Path

import pytest
import torch

from search_space import SearchSpace

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


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """Tests never read or write the user's MAC cache."""
    import os

    os.environ["EVIT_NAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield


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


# A search space small enough to profile in seconds, and a real table of it.
TINY_RES = (64, 128)
RES = TINY_RES


def tiny_space() -> SearchSpace:
    """A space small enough to profile in seconds."""
    return SearchSpace.from_dict(dict(
        widths=[[8], [8, 16], [16], [32], [32]],
        depths=[[0, 1], [1, 2], [1], [1], [1]],
        expand_ratios=[[2], [2], [2], [2]],
        head_dims=[16],
        scales=[3],
        attention=[False, True],
        head_widths=[8],
        head_depths=[0, 1],
        head_expand_ratios=[2],
        head_final_expands=[None],
        num_classes=3,
    ))


@pytest.fixture(scope="session")
def space() -> SearchSpace:
    return tiny_space()


@pytest.fixture(scope="session")
def space_file(tmp_path_factory, space):
    import json

    path = tmp_path_factory.mktemp("space") / "tiny_space.json"
    path.write_text(json.dumps(space.to_dict()))
    return path


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory, space):
    """A real table of the tiny space at 64x128 on this machine (few repeats)."""
    from latency_tables.build import plan_profile, profile_table

    path = tmp_path_factory.mktemp("table") / "tiny_64x128_t1.csv"
    plan = plan_profile(RES, space, calibration_networks=6, seed=0)
    profile_table(path, plan, device="test-machine", threads=1, warmup=1, repeats=3)
    return path
