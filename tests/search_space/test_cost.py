"""fvcore MACs: official totals, per-block sums, no silently dropped ops."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from search_space.cost import (IGNORED_OPS, MacCache, UncountedOpError, block_macs, count_macs, count_params, mac_cache,
                               stage_costs, use_mac_cache)
from search_space import build_model, create_model
from search_space.space import SearchSpace
from search_space.registry import model_spec

from ..conftest import OFFICIAL, official_name

SPACE = SearchSpace.default()


def _check_official(full, golden_counts):
    name, dataset = official_name(full)
    golden = golden_counts[full]
    resolution = tuple(golden["resolution"])
    want = golden["macs_g"] * 1e9
    whole = count_macs(create_model(name, dataset), resolution)
    by_blocks = count_macs(model_spec(name, dataset), resolution)
    assert whole == by_blocks
    assert abs(whole - want) / want < 0.001, f"{full}: {whole / 1e9:.4f} G MACs vs official {golden['macs_g']} G"
    assert count_params(model_spec(name, dataset)) == golden["params"]


def test_b0_matches_the_official_fvcore_count(golden_counts):
    _check_official("efficientvit_seg_b0_cityscapes", golden_counts)


@pytest.mark.slow
@pytest.mark.parametrize("full", [name for name in OFFICIAL if "_b0_" not in name])
def test_b1_b3_match_the_official_fvcore_counts(full, golden_counts):
    _check_official(full, golden_counts)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(64, 64), (64, 128), (128, 256), (32, 32)]))
def test_per_block_counts_sum_to_the_whole_model(seed, resolution):
    spec = SPACE.sample(seed)
    model = build_model(spec)
    assert count_macs(spec, resolution) == count_macs(model, resolution)
    assert count_params(spec) == count_params(model)


def test_stage_costs_add_up():
    spec = model_spec("efficientvit_seg_b1")
    stages = stage_costs(spec, (512, 1024))
    assert list(stages) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert sum(s["macs"] for s in stages.values()) == count_macs(spec, (512, 1024))
    assert sum(s["params"] for s in stages.values()) == count_params(spec)


def test_block_counts_are_cached_by_key(monkeypatch):
    from search_space.cost import macs

    key = SPACE.blocks(model_spec("efficientvit_seg_b0"), (256, 512))[5]
    first = block_macs(key)
    assert mac_cache().blocks[key] == first

    def count_again(*_args):
        raise AssertionError("block_macs traced a block it had counted")

    monkeypatch.setattr(macs, "_fvcore_macs", count_again)
    assert block_macs(type(key).from_dict(key.to_dict())) == first


def test_macs_scale_with_resolution():
    spec = model_spec("efficientvit_seg_b0")
    small, large = count_macs(spec, (256, 512)), count_macs(spec, (512, 1024))
    # convolutions scale with pixels; only the attention's small d x d products do not
    assert 3.9 < large / small <= 4.0


class _Cumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


def test_an_op_without_a_counter_is_an_error():
    with pytest.raises(UncountedOpError, match=r"no MAC counter for \['aten::cumsum'\] in _Cumsum"):
        count_macs(_Cumsum(), (32, 32))


def test_every_ignored_op_has_a_reason():
    assert all(isinstance(reason, str) and len(reason) > 20 for reason in IGNORED_OPS.values())


def test_block_counts_persist_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("EVIT_NAS_CACHE_DIR", str(tmp_path))
    disk = MacCache.from_environment()
    assert disk.path is not None and disk.path.parent == tmp_path
    key = SPACE.blocks(model_spec("efficientvit_seg_b0"), (64, 64))[3]
    disk.put(key.to_dict(), 123)  # written through at once: no save step
    again = MacCache(tmp_path)
    assert again.get(key.to_dict()) == 123
    (path,) = tmp_path.glob("block_macs-*.json")
    assert not [p for p in tmp_path.iterdir() if p != path]  # no temporary file left
    path.write_text("{damaged")
    assert MacCache(tmp_path).get(key.to_dict()) is None
    monkeypatch.setenv("EVIT_NAS_CACHE_DIR", "off")
    assert MacCache.from_environment().path is None


def test_the_process_cache_writes_block_counts_to_its_folder(tmp_path):
    key = SPACE.blocks(model_spec("efficientvit_seg_b0"), (64, 64))[4]
    previous = use_mac_cache(MacCache(tmp_path))
    try:
        macs = block_macs(key)
    finally:
        assert isinstance(use_mac_cache(previous), MacCache)
    assert MacCache(tmp_path).get(key.to_dict()) == macs > 0
