"""Segmentation datasets read from the users' own folders (nothing is downloaded).

Every dataset yields ``(image, label)``: a float32 tensor (3, H, W) normalised with the
ImageNet mean and std, and an int64 tensor (H, W) of class ids, ``IGNORE_INDEX`` (255)
where a pixel has no class. Layouts:

- Cityscapes: ``ROOT/leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png`` with
  ``ROOT/gtFine/SPLIT/CITY/NAME_gtFine_labelIds.png``; the 34 label ids are mapped to the
  19 training classes, all others ignored.
- ADE20K (SceneParsing 2016): ``ROOT/ADEChallengeData2016/images/SPLIT/NAME.jpg`` with
  ``ROOT/ADEChallengeData2016/annotations/SPLIT/NAME.png`` (ROOT may also be the
  ``ADEChallengeData2016`` folder itself); label 0 ("other") is ignored, 1..150 become 0..149.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["IGNORE_INDEX", "DatasetError", "CityscapesDataset", "ADE20KDataset", "CITYSCAPES_CLASSES"]

IGNORE_INDEX = 255
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
# Cityscapes label id -> train id (the official labels.py mapping); the rest is ignored.
_CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                         25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
_CITYSCAPES_LUT = np.full(256, IGNORE_INDEX, dtype=np.int64)
for _label, _train in _CITYSCAPES_TRAIN_IDS.items():
    _CITYSCAPES_LUT[_label] = _train


class DatasetError(ValueError):
    """A dataset folder that cannot be used; the message says what is wrong and expected."""


def _read(path: Path, mode: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(((image.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1).copy())


class _FolderDataset(torch.utils.data.Dataset):
    """Pairs of (image, label) files found under ``images_dir`` and ``labels_dir``."""

    num_classes: int
    name: str  # for messages
    LAYOUT: str
    IMAGES: str  # glob of the images under images_dir

    def __init__(self, images_dir: Path, labels_dir: Path) -> None:
        _require_dir(images_dir, f"{self.name} images", self.LAYOUT)
        _require_dir(labels_dir, f"{self.name} labels", self.LAYOUT)
        self.pairs = []
        for image in sorted(images_dir.glob(self.IMAGES)):
            label = self._label_path(image, labels_dir)
            if not label.is_file():
                raise DatasetError(f"{self.name}: {image} has no label {label}")
            self.pairs.append((image, label))
        if not self.pairs:
            raise DatasetError(f"{self.name}: no images in {images_dir}. Expected layout: {self.LAYOUT}")

    def _label_path(self, image: Path, labels_dir: Path) -> Path:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.pairs)

    def _label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        image = _read(image_path, "RGB")
        raw = _read(label_path, "L")
        if raw.shape != image.shape[:2]:
            raise DatasetError(f"{label_path}: label is {raw.shape[1]}x{raw.shape[0]} but its image is "
                               f"{image.shape[1]}x{image.shape[0]}")
        label = self._label(raw, label_path)
        return _to_tensor(image), torch.from_numpy(label)


def _require_dir(path: Path, what: str, layout: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{what}: no folder {path}. Expected layout: {layout}")


class CityscapesDataset(_FolderDataset):
    """Cityscapes fine annotations (19 classes). ``split``: train, val or test."""

    num_classes = 19
    name = "Cityscapes"
    LAYOUT = "ROOT/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png and ROOT/gtFine/SPLIT/CITY/*_gtFine_labelIds.png"
    IMAGES = "*/*_leftImg8bit.png"

    def __init__(self, root: str | Path, split: str = "train") -> None:
        root = Path(root)
        _require_dir(root, self.name, self.LAYOUT)
        super().__init__(root / "leftImg8bit" / split, root / "gtFine" / split)

    def _label_path(self, image: Path, labels_dir: Path) -> Path:
        stem = image.name[: -len("_leftImg8bit.png")]
        return labels_dir / image.parent.name / f"{stem}_gtFine_labelIds.png"

    def _label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        bad = raw[(raw > 33) & (raw != 255)]
        if bad.size:
            raise DatasetError(f"{path}: label id {int(bad.max())} is outside Cityscapes' 0..33 (255 = ignore); "
                               "is this a *_labelIds.png file?")
        return _CITYSCAPES_LUT[raw]


class ADE20KDataset(_FolderDataset):
    """ADE20K SceneParsing (150 classes). ``split``: training or validation."""

    num_classes = 150
    name = "ADE20K"
    LAYOUT = "ROOT/ADEChallengeData2016/images/SPLIT/*.jpg and ROOT/ADEChallengeData2016/annotations/SPLIT/*.png"
    IMAGES = "*.jpg"

    def __init__(self, root: str | Path, split: str = "training") -> None:
        root = Path(root)
        _require_dir(root, self.name, self.LAYOUT)
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        super().__init__(root / "images" / split, root / "annotations" / split)

    def _label_path(self, image: Path, labels_dir: Path) -> Path:
        return labels_dir / f"{image.stem}.png"

    def _label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.max() > 150:
            raise DatasetError(f"{path}: label value {int(raw.max())} is outside 0..150 (ADE20K has 150 classes, 0 = other)")
        label = raw.astype(np.int64) - 1
        label[raw == 0] = IGNORE_INDEX
        return label
