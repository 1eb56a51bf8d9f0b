import pytest

from search_space import SearchSpace

RES = (64, 128)


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
    profile_table(path, plan, "test-machine", threads=1, warmup=1, repeats=3)
    return path
