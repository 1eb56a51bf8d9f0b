"""Segmentation datasets read from the users' own folders (nothing is downloaded).

Every dataset yields ``(image, label)``: a float32 tensor (3, H, W) normalised with the
ImageNet mean and std, and an int64 tensor (H, W) of class ids, ``IGNORE_INDEX`` (255)
where a pixel has no class. Layouts:

- Cityscapes: ``ROOT/leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png`` with
  ``ROOT/gtFine/SPLIT/CITY/NAME_gtFine_labelIds.png``; the 34 label ids are mapped to the
  19 training classes, all others ignored.
- Synthetic: generated from a seed at any size, nothing on disk (:class:`SyntheticDataset`).
- ADE20K (SceneParsing 2016): ``ROOT/ADEChallengeData2016/images/SPLIT/NAME.jpg`` with
  ``ROOT/ADEChallengeData2016/annotations/SPLIT/NAME.png`` (ROOT may also be the
  ``ADEChallengeData2016`` folder itself); label 0 ("other") is ignored, 1..150 become 0..149.
- CamVid (the 11-class SegNet version): ``ROOT/SPLIT/NAME.jpg`` (or ``.png``) with
  ``ROOT/SPLITannot/NAME.png``, SPLIT train, val or test; labels 0..10 are the classes,
  11 (void) is ignored. Read once and kept in memory, optionally rescaled
  (:class:`CamVidDataset`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from search_space.errors import EvitNasError

__all__ = ["IGNORE_INDEX", "DatasetError", "image_arrays", "CityscapesDataset", "ADE20KDataset", "CamVidDataset", "SyntheticDataset",
           "CITYSCAPES_CLASSES", "CAMVID_CLASSES", "SYNTHETIC_CLASSES", "open_dataset"]

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


class DatasetError(EvitNasError, ValueError):
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
        for image in self._images(images_dir):
            label = self._label_path(image, labels_dir)
            if not label.is_file():
                raise DatasetError(f"{self.name}: {image} has no label {label}")
            self.pairs.append((image, label))
        if not self.pairs:
            raise DatasetError(f"{self.name}: no images in {images_dir}. Expected layout: {self.LAYOUT}")

    def _images(self, images_dir: Path) -> list[Path]:
        return sorted(images_dir.glob(self.IMAGES))

    def _label_path(self, image: Path, labels_dir: Path) -> Path:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.pairs)

    def _label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        raise NotImplementedError

    def _arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image (H, W, 3) uint8 and label (H, W) of class ids, read and checked."""
        image_path, label_path = self.pairs[index]
        image = _read(image_path, "RGB")
        raw = _read(label_path, "L")
        if raw.shape != image.shape[:2]:
            raise DatasetError(f"{label_path}: label is {raw.shape[1]}x{raw.shape[0]} but its image is "
                               f"{image.shape[1]}x{image.shape[0]}")
        return image, self._label(raw, label_path)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self._arrays(index)
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


CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car", "pedestrian",
                  "bicyclist")
_CAMVID_VOID = 11


class CamVidDataset(_FolderDataset):
    """CamVid, 11 classes (void ignored). ``split``: train, val or test.

    All images are read when the dataset is made and kept in memory as uint8 (CamVid is
    small), so a bad file is reported at once and training decodes nothing.

    Args:
        scale: resize factor applied at load (image bilinear, label nearest); 2/3 turns the
            360x480 originals into 240x320.
    """

    num_classes = len(CAMVID_CLASSES)
    name = "CamVid"
    classes = CAMVID_CLASSES
    LAYOUT = "ROOT/SPLIT/NAME.jpg (or NAME.png) and ROOT/SPLITannot/NAME.png"

    def __init__(self, root: str | Path, split: str = "train", scale: float = 1.0) -> None:
        root = Path(root)
        _require_dir(root, self.name, self.LAYOUT)
        if not scale > 0:
            raise DatasetError(f"{self.name}: scale must be positive, got {scale}")
        self.scale = float(scale)
        super().__init__(root / split, root / f"{split}annot")
        self.samples = [self._resized(*self._arrays(i)) for i in range(len(self.pairs))]

    def _images(self, images_dir: Path) -> list[Path]:
        images = sorted([*images_dir.glob("*.jpg"), *images_dir.glob("*.png")])
        twice = sorted(stem for stem, n in Counter(p.stem for p in images).items() if n > 1)
        if twice:
            raise DatasetError(f"{self.name}: {images_dir} has both a .jpg and a .png for {', '.join(twice[:3])}; "
                               "keep one of them")
        return images

    def _label_path(self, image: Path, labels_dir: Path) -> Path:
        return labels_dir / f"{image.stem}.png"

    def _label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.max() > _CAMVID_VOID:
            raise DatasetError(f"{path}: label value {int(raw.max())} is outside 0..{_CAMVID_VOID} "
                               f"(CamVid has {self.num_classes} classes, {_CAMVID_VOID} = void)")
        return np.where(raw == _CAMVID_VOID, IGNORE_INDEX, raw).astype(np.uint8)

    def _resized(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.scale == 1.0:
            return image, label
        from PIL import Image

        h, w = label.shape
        size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
        return (np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)),
                np.asarray(Image.fromarray(label).resize(size, Image.NEAREST)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.samples[index]
        return _to_tensor(image), torch.from_numpy(label.astype(np.int64))


SYNTHETIC_CLASSES = ("background", "line", "disk-red", "disk-green", "square-yellow", "square-cyan", "marker")


class SyntheticDataset(torch.utils.data.Dataset):
    """A procedural segmentation task that needs local detail, mid-range context and global
    context; generated from ``(seed, split, index)`` at any size, nothing on disk.

    An image holds thin lines (class 1) and 6-10 striped disks and squares of several sizes
    (the stripes, fine or coarse, carry no class):

    - a disk's class (2 red, 3 green) is the colour of a thin ring drawn around it at a gap
      (mid-range context: every disk has its own ring, so pooling over the whole image
      cannot tell which ring is whose);
    - a square's class (4 yellow, 5 cyan) is the image's mode, shown only by the colour of a
      few small markers (class 6) scattered over the background (global context: a square
      may be far from all of them).

    Rings are background. Sizes scale with ``min(H, W) / 128``. Images are
    generated at ``resolution``; train without random rescaling (a crop could cut away
    the markers that decide the mode). ``benchmarks/ablation.py`` measures which of
    attention and multi-scale aggregation each cue needs.

    Args:
        resolution: (H, W) of every image.
        length: images in the split.
        seed: the task instance; ``split`` ("train" or "val") selects disjoint images.
    """

    num_classes = len(SYNTHETIC_CLASSES)
    name = "synthetic"
    classes = SYNTHETIC_CLASSES

    _RING = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.15]], dtype=np.float32)
    _MODE = np.array([[0.95, 0.9, 0.05], [0.05, 0.85, 0.9]], dtype=np.float32)

    def __init__(self, resolution: tuple[int, int] = (128, 256), length: int = 2000, seed: int = 0,
                 split: str = "train") -> None:
        if split not in ("train", "val"):
            raise DatasetError(f"synthetic: unknown split {split!r}; choose train or val")
        h, w = resolution
        if h < 32 or w < 32:
            raise DatasetError(f"synthetic: resolution {h}x{w} is too small; use at least 32x32")
        if length < 1:
            raise DatasetError("synthetic: length must be at least 1")
        self.resolution, self.length, self.seed, self.split = (int(h), int(w)), int(length), int(seed), split
        self._yy, self._xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        image, label = self.generate(index)
        return _to_tensor(image), torch.from_numpy(label)

    def generate(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image (H, W, 3) uint8 and label (H, W) int64 number ``index``."""
        rng = np.random.default_rng([self.seed, 0 if self.split == "train" else 1, index])
        h, w = self.resolution
        unit = min(h, w) / 128.0
        yy, xx = self._yy, self._xx
        image = rng.uniform(0.3, 0.6, size=3).astype(np.float32) + rng.normal(0, 0.04, size=(h, w, 3)).astype(np.float32)
        label = np.zeros((h, w), dtype=np.int64)
        occupied = np.zeros((h, w), dtype=bool)
        mode = int(rng.integers(2))

        for _ in range(int(rng.integers(2, 5))):  # thin lines, 2-4 px at 128 px
            y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
            angle = rng.uniform(0, np.pi)
            dy, dx = np.sin(angle), np.cos(angle)
            half = rng.uniform(2.0, 4.0) * unit / 2
            along = (yy - y0) * dy + (xx - x0) * dx
            mask = (np.abs((yy - y0) * dx - (xx - x0) * dy) <= half) & (np.abs(along) <= rng.uniform(0.3, 0.8) * w / 2)
            image[mask] = rng.uniform(0.0, 1.0, size=3)
            label[mask] = 1

        placed: list[tuple[float, float, float]] = []
        wanted = int(rng.integers(6, 11))
        for _ in range(wanted * 8):  # rejection sampling of non-overlapping objects
            if len(placed) >= wanted:
                break
            radius = float(np.exp(rng.uniform(np.log(7), np.log(28)))) * unit
            gap = rng.uniform(6, 18) * unit
            reach = radius + gap + 3 * unit
            cy = rng.uniform(reach, h - reach) if h > 2 * reach else h / 2
            cx = rng.uniform(reach, w - reach) if w > 2 * reach else w / 2
            if any(np.hypot(cy - py, cx - px) < reach + pr for py, px, pr in placed):
                continue
            placed.append((cy, cx, reach))
            # work in the object's bounding window only
            y0, y1 = max(0, int(cy - reach - 2 * unit)), min(h, int(cy + reach + 2 * unit) + 2)
            x0, x1 = max(0, int(cx - reach - 2 * unit)), min(w, int(cx + reach + 2 * unit) + 2)
            wy, wx = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
            square = bool(rng.integers(2))
            dist = np.maximum(np.abs(wy - cy), np.abs(wx - cx)) if square else np.hypot(wy - cy, wx - cx)
            inside = dist <= radius
            ring_colour = int(rng.integers(2))
            period = (rng.uniform(3.5, 5.0) if rng.integers(2) else rng.uniform(9.0, 12.0)) * unit
            angle = rng.uniform(0, np.pi)
            phase = ((wy * np.sin(angle) + wx * np.cos(angle)) / period) % 1.0
            base = rng.uniform(0.3, 0.7, size=3).astype(np.float32)
            stripes = np.where(phase < 0.5, 0.2, -0.2).astype(np.float32)
            win_image, win_label = image[y0:y1, x0:x1], label[y0:y1, x0:x1]
            win_image[inside] = np.clip(base + stripes[inside][:, None], 0, 1)
            if square:  # class by the image's mode
                win_label[inside] = 4 + mode
            else:  # class by its own ring
                win_label[inside] = 2 + ring_colour
                ring = (dist > radius + gap) & (dist <= reach)
                win_image[ring] = self._RING[ring_colour]
                win_label[ring] = 0
            occupied[y0:y1, x0:x1] |= dist <= reach + 2 * unit

        size = max(2, round(8 * unit))
        swatches, target = 0, max(2, round(MARKERS * h * w / (128 * 256)))
        for _ in range(80):  # mode markers on free background
            if swatches >= target:
                break
            y, x = int(rng.integers(0, h - size)), int(rng.integers(0, w - size))
            if occupied[y:y + size, x:x + size].any():
                continue
            image[y:y + size, x:x + size] = self._MODE[mode]
            label[y:y + size, x:x + size] = 6
            occupied[y:y + size, x:x + size] = True
            swatches += 1
        return (np.clip(image, 0, 1) * 255).astype(np.uint8), label


MARKERS = 3  # mode markers in a 128x256 image
DATASET_CHOICES = "synthetic, cityscapes:PATH, ade20k:PATH or camvid:PATH"
#: CamVid is trained and evaluated at 2/3 of its 360x480 images (240x320): brief CPU training
CAMVID_SCALE = 2 / 3


def open_dataset(name: str, split: str = "train", resolution: tuple[int, int] = (128, 256), seed: int = 0,
                 length: int | None = None) -> torch.utils.data.Dataset:
    """The dataset named ``name`` ("synthetic", "cityscapes:PATH", "ade20k:PATH" or "camvid:PATH").

    ``split`` is "train" or "val" (mapped to ADE20K's training/validation); ``resolution``,
    ``seed`` and ``length`` only shape the synthetic data (default length: 2000 train,
    64 val images).

    Raises:
        DatasetError: unknown name or unusable folder.
    """
    if split not in ("train", "val"):
        raise DatasetError(f"unknown split {split!r}; choose train or val")
    kind, _, path = name.partition(":")
    if kind == "synthetic" and not path:
        return SyntheticDataset(resolution, length or (2000 if split == "train" else 64), seed, split)
    if kind == "cityscapes" and path:
        return CityscapesDataset(path, split)
    if kind == "camvid" and path:
        return CamVidDataset(path, split, scale=CAMVID_SCALE)
    if kind == "ade20k" and path:
        return ADE20KDataset(path, "training" if split == "train" else "validation")
    raise DatasetError(f"unknown dataset {name!r}; choose {DATASET_CHOICES}")


def image_arrays(dataset: torch.utils.data.Dataset, count: int) -> tuple[np.ndarray, ...]:
    """``count`` images of ``dataset`` (all of them if it has fewer), evenly spread over it,
    as (1, 3, H, W) float32 arrays normalised as for training: what int8 models are
    calibrated and compared on."""
    count = min(count, len(dataset))
    step = len(dataset) / count
    return tuple(dataset[int(i * step)][0].unsqueeze(0).numpy() for i in range(count))
