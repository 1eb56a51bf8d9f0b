"""SearchSpace: membership, sampling, Optuna suggestions, block enumeration."""

import itertools
import json
import random

import optuna
import pytest
import yaml

from search_space import SpecError, build_model
from search_space.blocks import layout
from search_space.space import SearchSpace
from search_space.registry import model_spec

SPACE = SearchSpace.default()


def tiny_space(**changes) -> SearchSpace:
    data = dict(
        widths=[[8], [16, 24], [32], [32, 64], [64]],
        depths=[[0, 1], [1, 2], [1], [1, 2], [1]],
        expand_ratios=[[4], [3, 4], [4], [4]],
        head_dims=[16, 32],
        scales=[3, 5],
        attention=[False, True],
        head_widths=[16, 32],
        head_depths=[0, 1],
        head_expand_ratios=[4],
        head_final_expands=[None, 2],
        num_classes=5,
    )
    data.update(changes)
    return SearchSpace.from_dict(data)


def enumerate_specs(space: SearchSpace) -> set:
    names, choices = zip(*space.decisions())
    return {space.decide(lambda n, _c, v=dict(zip(names, combo)): v[n]) for combo in itertools.product(*choices)}


@pytest.mark.parametrize("b", [0, 1, 2, 3])
def test_default_space_contains_the_b_series(b):
    assert SPACE.contains(model_spec(f"efficientvit_seg_b{b}"))
    assert SearchSpace.default("ade20k").contains(model_spec(f"efficientvit_seg_b{max(b, 1)}", "ade20k"))


def test_contains_says_why_not():
    spec = model_spec("efficientvit_seg_b0")
    assert not SPACE.contains(model_spec("efficientvit_seg_b1", "ade20k"))
    assert SPACE.why_not(model_spec("efficientvit_seg_b1", "ade20k")) == "num_classes=150 is not among [19]"
    wide = spec.__class__.from_dict({**spec.to_dict(), "widths": [8, 16, 32, 64, 1024]})
    assert SPACE.why_not(wide) == "widths[stage4]=1024 is not among [128, 192, 256, 384, 512]"


def test_sampling_is_seeded_and_stays_in_the_space():
    assert SPACE.sample(7) == SPACE.sample(7)
    rng = random.Random(1)
    specs = [SPACE.sample(rng) for _ in range(200)]
    assert all(SPACE.contains(s) for s in specs)
    assert len(set(specs)) == 200
    flags = [flag for s in specs for stage in s.attention for flag in stage]
    assert 0.4 < sum(flags) / len(flags) < 0.6  # attention is placed block by block
    assert {len(s.scales) for s in specs} == {0, 1, 2, 3}


def test_suggest_with_a_real_optuna_study():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(20):
        trial = study.ask()
        spec = SPACE.suggest(trial)
        assert SPACE.contains(spec)
        seen.append(spec)
        study.tell(trial, float(sum(spec.widths)))
    assert len(set(seen)) == 20
    # the parameters are the space's decisions, so a trial's params rebuild its network
    best = study.best_trial
    assert SPACE.decide(lambda name, _c: best.params[name]) == seen[best.number]


def test_size_matches_brute_force_enumeration():
    space = tiny_space()
    assert len(enumerate_specs(space)) == space.size()


def test_unique_blocks_is_exactly_what_the_networks_use():
    space = tiny_space()
    resolution = (64, 128)
    used = {key for spec in enumerate_specs(space) for key in space.blocks(spec, resolution)}
    assert set(space.unique_blocks(resolution)) == used


def test_unique_blocks_of_the_default_space_cover_sampled_networks():
    keys = set(SPACE.unique_blocks((512, 1024)))
    for seed in range(300):
        assert set(SPACE.blocks(SPACE.sample(seed), (512, 1024))) <= keys
    for b in range(4):
        assert set(SPACE.blocks(model_spec(f"efficientvit_seg_b{b}"), (512, 1024))) <= keys


def test_block_keys_are_hashable_and_json_ready():
    keys = SPACE.blocks(model_spec("efficientvit_seg_b1"), (512, 1024))
    again = [type(k).from_dict(json.loads(json.dumps(k.to_dict()))) for k in keys]
    assert again == keys
    assert len({*keys}) < len(keys)  # repeated blocks share a key
    assert keys[0].kind == "stem_conv" and keys[0].height == 512 and keys[-1].kind == "seg_output"


def test_blocks_match_the_built_network():
    spec = SPACE.sample(3)
    model = build_model(spec)
    n_leaf = sum(1 for _ in layout(spec))
    assert len(SPACE.blocks(spec, (256, 512))) == n_leaf
    # every EfficientViT block without attention has no context module
    flags = [f for stage in spec.attention for f in stage]
    blocks = [blk for stage in model.backbone.stages[2:] for blk in list(stage.op_list)[1:]]
    assert [blk.context_module is not None for blk in blocks] == flags


def test_space_from_json_and_yaml_files(tmp_path):
    data = tiny_space().to_dict()
    (tmp_path / "s.json").write_text(json.dumps(data))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    assert SearchSpace.from_file(tmp_path / "s.json") == tiny_space()
    assert SearchSpace.from_file(tmp_path / "s.yaml") == tiny_space()
    assert SearchSpace.from_file(tmp_path / "s.json").fingerprint() == tiny_space().fingerprint()


def test_invalid_spaces_are_refused():
    with pytest.raises(SpecError, match=r"SearchSpace allows an invalid network: ArchSpec.widths: stage3 has attention, so its width 48"):
        tiny_space(widths=[[8], [16], [32], [48], [64]])
    with pytest.raises(SpecError, match=r"SearchSpace.head_widths: expected a non-empty list"):
        tiny_space(head_widths=[])
    with pytest.raises(SpecError, match=r"SearchSpace: unknown field\(s\) \['colour'\]"):
        SearchSpace.from_dict({**tiny_space().to_dict(), "colour": 1})
    with pytest.raises(SpecError, match="SearchSpace.attention"):
        tiny_space(attention=[1])
    with pytest.raises(SpecError, match="unknown dataset"):
        SearchSpace.default("coco")


def test_resolution_must_be_multiple_of_32():
    with pytest.raises(SpecError, match=r"resolution 500x1000: H and W must be positive multiples of 32 .* for example 512x992"):
        SPACE.blocks(model_spec("efficientvit_seg_b0"), (500, 1000))
