"""Dataset folders in the real Cityscapes, ADE20K and CamVid layouts (tiny fixtures written here)."""

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data import (CAMVID_SCALE, IGNORE_INDEX, ADE20KDataset, CamVidDataset, CityscapesDataset, DatasetError, SyntheticDataset,
                      open_dataset)


def _save(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode).save(path)


def cityscapes(root, labels=None, split="train"):
    rng = np.random.default_rng(0)
    for city, name in (("aachen", "aachen_000000_000019"), ("bremen", "bremen_000001_000019")):
        _save(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", rng.integers(0, 255, (16, 32, 3)), "RGB")
        label = labels if labels is not None else np.tile(np.array([7, 26, 0, 33, 255, 24, 8, 4]), (16, 4))
        _save(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", label, "L")
    return root


def ade20k(root, label=None):
    rng = np.random.default_rng(1)
    base = root / "ADEChallengeData2016"
    for name in ("ADE_train_00000001", "ADE_train_00000002"):
        _save(base / "images" / "training" / f"{name}.jpg", rng.integers(0, 255, (12, 20, 3)), "RGB")
        _save(base / "annotations" / "training" / f"{name}.png",
              label if label is not None else np.tile(np.arange(0, 151, 30), (12, 4))[:, :20], "L")
    return root


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    data = CityscapesDataset(cityscapes(tmp_path))
    assert len(data) == 2 and data.num_classes == 19
    image, label = data[0]
    assert image.shape == (3, 16, 32) and image.dtype == torch.float32
    assert label.shape == (16, 32) and label.dtype == torch.int64
    assert label[0, :8].tolist() == [0, 13, IGNORE_INDEX, 18, IGNORE_INDEX, 11, 1, IGNORE_INDEX]
    assert abs(float(image.mean())) < 1.5


def test_ade20k_shifts_classes_and_ignores_other(tmp_path):
    for root in (tmp_path, tmp_path / "ADEChallengeData2016"):
        data = ADE20KDataset(ade20k(tmp_path) if root == tmp_path else root)
        _, label = data[1]
        assert data.num_classes == 150 and len(data) == 2
        assert label[0, :6].tolist() == [IGNORE_INDEX, 29, 59, 89, 119, 149]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: CityscapesDataset(p / "none"), r"Cityscapes: no folder .*none\. Expected layout: ROOT/leftImg8bit"),
        (lambda p: CityscapesDataset((p / "leftImg8bit" / "train").mkdir(parents=True) or (p / "gtFine" / "train").mkdir(parents=True) or p),
         "Cityscapes: no images in"),
        (lambda p: ADE20KDataset(p), r"ADE20K images: no folder"),
    ],
)
def test_missing_and_empty_folders_are_named(tmp_path, make, message):
    with pytest.raises(DatasetError, match=message):
        make(tmp_path)


def test_images_without_labels_and_labels_out_of_range(tmp_path):
    root = cityscapes(tmp_path / "c")
    next((root / "gtFine").rglob("*.png")).unlink()
    with pytest.raises(DatasetError, match=r"Cityscapes: .*_leftImg8bit\.png has no label .*_gtFine_labelIds\.png"):
        CityscapesDataset(root)
    bad = CityscapesDataset(cityscapes(tmp_path / "d", labels=np.full((16, 32), 40)))
    with pytest.raises(DatasetError, match=r"label id 40 is outside Cityscapes' 0..33"):
        bad[0]
    worse = ADE20KDataset(ade20k(tmp_path / "e", label=np.full((12, 20), 200)))
    with pytest.raises(DatasetError, match=r"label value 200 is outside 0..150"):
        worse[0]


def test_synthetic_is_deterministic_and_splits_are_disjoint():
    a, b = SyntheticDataset((64, 128), length=4, seed=3), SyntheticDataset((64, 128), length=4, seed=3)
    image, label = a[1]
    assert image.shape == (3, 64, 128) and image.dtype == torch.float32
    assert label.shape == (64, 128) and label.dtype == torch.int64
    assert torch.equal(image, b[1][0]) and torch.equal(label, b[1][1])
    assert not torch.equal(image, a[2][0])
    assert not torch.equal(image, SyntheticDataset((64, 128), length=4, seed=3, split="val")[1][0])
    assert not torch.equal(image, SyntheticDataset((64, 128), length=4, seed=4)[1][0])
    with pytest.raises(IndexError):
        a[4]


@pytest.mark.parametrize("resolution", [(32, 64), (96, 160), (256, 512)])
def test_synthetic_labels_follow_the_rings_and_the_mode(resolution):
    data = SyntheticDataset(resolution, length=6, seed=0)
    ring_rgb = (data._RING * 255).astype(np.uint8)
    mode_rgb = (data._MODE * 255).astype(np.uint8)
    seen = set()
    for index in range(len(data)):
        image, label = data.generate(index)
        assert image.shape == (*resolution, 3) and label.shape == resolution
        assert 0 <= label.min() and label.max() < data.num_classes
        seen.update(np.unique(label).tolist())
        squares = np.unique(label[(label == 4) | (label == 5)])
        assert len(squares) <= 1  # one mode per image, shown by the swatches' colour
        if len(squares):
            mode = int(squares[0]) - 4
            assert (image == mode_rgb[mode]).all(-1).any() and not (image == mode_rgb[1 - mode]).all(-1).any()
            assert (label[(image == mode_rgb[mode]).all(-1)] == 6).all()  # the markers have their own class
        for cls in np.unique(label[(label == 2) | (label == 3)]):  # a disk's class is its ring's colour
            assert (image == ring_rgb[cls - 2]).all(-1).any()
    assert {0, 1, 6} <= seen and len(seen & {2, 3, 4, 5}) >= 2


def test_open_dataset_names_and_errors(tmp_path):
    data = open_dataset("synthetic", "val", (64, 128))
    assert isinstance(data, SyntheticDataset) and len(data) == 64 and data.split == "val"
    for name, message in [("imagenet", "unknown dataset 'imagenet'"), ("cityscapes", "unknown dataset"),
                          (f"cityscapes:{tmp_path / 'none'}", "no folder"), (f"ade20k:{tmp_path / 'none'}", "no folder")]:
        with pytest.raises(DatasetError, match=message):
            open_dataset(name)
    with pytest.raises(DatasetError, match="too small"):
        SyntheticDataset((16, 16))
    with pytest.raises(DatasetError, match="split"):
        open_dataset("synthetic", "test")


def camvid(root, split="train", label=None, image_ext=".jpg", size=(12, 18)):
    rng = np.random.default_rng(2)
    for name in ("0001TP_006690", "Seq05VD_f00000"):
        _save(root / split / f"{name}{image_ext}", rng.integers(0, 255, (*size, 3)), "RGB")
        _save(root / f"{split}annot" / f"{name}.png",
              label if label is not None else np.tile(np.arange(12), (size[0], size[1] // 12 + 1))[:, :size[1]], "L")
    return root


@pytest.mark.parametrize("image_ext", [".jpg", ".png"])
def test_camvid_loads_and_ignores_void(tmp_path, image_ext):
    data = CamVidDataset(camvid(tmp_path, "val", image_ext=image_ext), "val")
    assert len(data) == 2 and data.num_classes == 11 and len(data.classes) == 11
    image, label = data[0]
    assert image.shape == (3, 12, 18) and image.dtype == torch.float32
    assert label.dtype == torch.int64 and label[0, :12].tolist() == [*range(11), IGNORE_INDEX]
    # open_dataset gives the brief-training scale (2/3 of the images)
    scaled = CamVidDataset(tmp_path, "val", scale=CAMVID_SCALE)
    assert torch.equal(open_dataset(f"camvid:{tmp_path}", "val")[1][1], scaled[1][1])
    assert scaled[1][1].shape == (8, 12)


def test_camvid_scale_resizes_image_and_label(tmp_path):
    label = np.zeros((12, 18), dtype=np.uint8)
    label[:, 9:] = 3
    label[0, 0] = 11
    image, resized = CamVidDataset(camvid(tmp_path, label=label), scale=2 / 3)[1]
    assert image.shape == (3, 8, 12) and resized.shape == (8, 12)
    assert set(resized.unique().tolist()) <= {0, 3, IGNORE_INDEX}  # nearest: no blended class ids
    assert (resized[1:, :5] == 0).all() and (resized[:, 7:] == 3).all() and resized[0, 0] == IGNORE_INDEX


def test_camvid_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(DatasetError, match=r"CamVid images: no folder .*test\. Expected layout: ROOT/SPLIT/NAME\.jpg"):
        CamVidDataset(camvid(tmp_path / "a"), "test")
    root = camvid(tmp_path / "b")
    (root / "trainannot" / "Seq05VD_f00000.png").unlink()
    with pytest.raises(DatasetError, match=r"CamVid: .*Seq05VD_f00000\.jpg has no label .*trainannot/Seq05VD_f00000\.png"):
        CamVidDataset(root)
    with pytest.raises(DatasetError, match=r"label value 12 is outside 0\.\.11 \(CamVid has 11 classes, 11 = void\)"):
        CamVidDataset(camvid(tmp_path / "c", label=np.full((12, 18), 12)))
    with pytest.raises(DatasetError, match=r"label is 18x12 but its image is 20x12"):
        CamVidDataset(camvid(tmp_path / "d", size=(12, 20), label=np.zeros((12, 18))))
    root = camvid(tmp_path / "e")
    _save(root / "train" / "Seq05VD_f00000.png", np.zeros((12, 18, 3)), "RGB")
    with pytest.raises(DatasetError, match=r"both a \.jpg and a \.png for Seq05VD_f00000"):
        CamVidDataset(root)
