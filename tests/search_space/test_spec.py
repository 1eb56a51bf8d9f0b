"""ArchSpec: lossless JSON round trip and clear errors for bad specs."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_space import ArchSpec, SpecError
from search_space.space import SearchSpace
from search_space.registry import model_spec

B0 = model_spec("efficientvit_seg_b0")


@st.composite
def arch_specs(draw) -> ArchSpec:
    """Arbitrary valid specs, well beyond the default space."""
    head_dim = draw(st.sampled_from([4, 8, 16, 32]))
    widths = [draw(st.integers(1, 96)) for _ in range(3)] + [head_dim * draw(st.integers(1, 8)) for _ in range(2)]
    depths = [draw(st.integers(0, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)),
              draw(st.integers(0, 5)), draw(st.integers(0, 5))]
    return ArchSpec(
        widths=tuple(widths),
        depths=tuple(depths),
        expand_ratios=tuple(draw(st.integers(1, 8)) for _ in range(4)),
        head_dim=head_dim,
        scales=tuple(sorted(draw(st.sets(st.sampled_from([3, 5, 7, 9]))))),
        attention=tuple(tuple(draw(st.booleans()) for _ in range(depths[i])) for i in (3, 4)),
        head_width=draw(st.integers(1, 128)),
        head_depth=draw(st.integers(0, 4)),
        head_expand_ratio=draw(st.integers(1, 6)),
        head_final_expand=draw(st.none() | st.integers(1, 6)),
        num_classes=draw(st.integers(1, 200)),
    )


@settings(max_examples=300, deadline=None)
@given(arch_specs())
def test_json_round_trip_is_lossless(spec):
    text = spec.to_json()
    again = ArchSpec.from_json(text)
    assert again == spec
    assert hash(again) == hash(spec)
    assert again.to_json() == text
    assert ArchSpec.from_dict(json.loads(text)) == spec


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_round_trip_of_sampled_networks(seed):
    spec = SearchSpace.default().sample(seed)
    assert ArchSpec.from_json(spec.to_json()) == spec


def test_round_trip_through_a_file(tmp_path):
    path = tmp_path / "b0.json"
    path.write_text(B0.to_json())
    assert ArchSpec.from_json(path) == B0
    assert ArchSpec.from_json(str(path)) == B0


def _bad(**changes):
    data = B0.to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"widths": [8, 16, 32, 64]}, r"ArchSpec.widths: expected 5 integers \(channels of stem, stage1..stage4\)"),
        ({"widths": [8, 16, 0, 64, 128]}, r"ArchSpec.widths: every entry must be >= 1"),
        ({"depths": [1, 0, 2, 2, 2]}, r"ArchSpec.depths: stage1 needs at least 1 block"),
        ({"expand_ratios": [4, 4, 4, 4.5]}, r"ArchSpec.expand_ratios: expected 4 integers"),
        ({"scales": [5, 3]}, r"ArchSpec.scales: expected strictly increasing odd kernel sizes >= 3"),
        ({"scales": [4]}, r"ArchSpec.scales: .*for example \[\] or \[5\] or \[3, 5, 7\]"),
        ({"attention": [[True, True], [True]]}, r"ArchSpec.attention: stage4 has depth 2 but 1 attention flags"),
        ({"attention": [[1, 1], [1, 1]]}, r"ArchSpec.attention: stage3 flags must be true/false"),
        ({"head_dim": 48}, r"ArchSpec.widths: stage3 has attention, so its width 64 must be a multiple of head_dim=48"),
        ({"head_depth": -1}, r"ArchSpec.head_depth: expected an integer >= 0"),
        ({"head_final_expand": "4"}, r"ArchSpec.head_final_expand: expected an integer >= 1 .*or null"),
        ({"num_classes": True}, r"ArchSpec.num_classes: expected an integer >= 1"),
    ],
)
def test_invalid_specs_name_the_field_and_the_allowed_values(changes, message):
    with pytest.raises(SpecError, match=message):
        ArchSpec.from_dict(_bad(**changes))


def test_unknown_and_missing_fields_are_errors():
    data = _bad(widht=[1])
    with pytest.raises(SpecError, match=r"unknown field\(s\) \['widht'\]; the fields are \['widths'"):
        ArchSpec.from_dict(data)
    data = B0.to_dict()
    del data["scales"]
    with pytest.raises(SpecError, match=r"missing field\(s\) \['scales'\]"):
        ArchSpec.from_dict(data)


def test_bad_json_and_missing_files(tmp_path):
    with pytest.raises(SpecError, match=r"not valid JSON .* line 1, column"):
        ArchSpec.from_json('{"widths": [8,')
    with pytest.raises(SpecError, match="ArchSpec file not found"):
        ArchSpec.from_json(tmp_path / "nope.json")
    with pytest.raises(SpecError, match=r"ArchSpec: expected a JSON object \(a mapping\), got list"):
        ArchSpec.from_dict([1, 2])


def test_network_without_attention_needs_no_divisible_width():
    spec = ArchSpec.from_dict(_bad(head_dim=48, attention=[[False, False], [False, False]]))
    assert spec.head_dim == 48


def test_summary_is_one_line():
    assert B0.summary() == "w8-16-32-64-128 d1-2-2-2-2 e4-4-4-4 hd16 k5 att11/11 head32x1e4f4 c19"
