"""Brief training: schedule, augmentation, mIoU, determinism, resume."""

import math

import pytest
import torch

from nas.train import Recipe, TrainError, augment, confusion_matrix, evaluate, miou, train
from search_space import ArchSpec, build_model

TINY = ArchSpec(widths=(8, 8, 16, 16, 32), depths=(0, 1, 1, 1, 1), expand_ratios=(2, 2, 2, 2), head_dim=8,
                scales=(3,), attention=((True,), (True,)), head_width=8, head_depth=1, head_expand_ratio=2,
                head_final_expand=None, num_classes=3)


class Blobs(torch.utils.data.Dataset):
    """Learnable toy task: the class of a pixel is its brightness band in channel 0."""

    def __init__(self, n=8, size=(48, 96), seed=0, fail_at=None):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, *size, generator=g)
        self.labels = ((self.images[:, 0] > -0.4).long() + (self.images[:, 0] > 0.4).long())
        self.labels[:, :2] = 255  # some ignored pixels
        self.fail_at, self.reads = fail_at, 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.reads += 1
        if self.fail_at is not None and self.reads > self.fail_at:
            raise KeyboardInterrupt
        return self.images[i], self.labels[i]


RECIPE = Recipe(steps=12, batch_size=2, crop=(32, 64), checkpoint_every=4, lr=5e-3)


def _model():
    torch.manual_seed(0)
    return build_model(TINY)


def test_miou_from_a_known_confusion_matrix():
    label = torch.tensor([0, 0, 1, 1, 2, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    matrix = confusion_matrix(pred, label, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    mean, per_class = miou(matrix)
    assert per_class == pytest.approx([100 / 3, 200 / 3, 0.0])
    assert mean == pytest.approx(100 / 3)
    _, absent = miou(torch.tensor([[2, 0], [0, 0]]))
    assert absent[0] == 100.0 and math.isnan(absent[1])


def test_recipe_checks_its_crop():
    with pytest.raises(TrainError, match=r"Recipe.crop \(100, 200\): height and width must be positive multiples of 32"):
        Recipe(crop=(100, 200))


def test_schedule_warms_up_then_decays():
    recipe = Recipe(steps=100, lr=1.0, warmup=0.1)
    lrs = [recipe.lr_at(s) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01
    assert Recipe(steps=100, lr=1.0, schedule="poly").lr_at(99) < 0.05
    with pytest.raises(TrainError, match="unknown schedule"):
        Recipe(schedule="step").lr_at(50)


def test_augment_keeps_labels_aligned_and_pads_with_ignore():
    image = torch.arange(16 * 32, dtype=torch.float32).reshape(1, 16, 32).repeat(3, 1, 1)
    label = torch.arange(16 * 32).reshape(16, 32) % 7
    big_image = torch.arange(32 * 64, dtype=torch.float32).reshape(1, 32, 64).repeat(3, 1, 1)
    big_label = torch.arange(32 * 64).reshape(32, 64) % 7
    recipe = Recipe(crop=(32, 64), scale_range=(1.0, 1.0), flip=False)
    out_image, out_label = augment(image, label, recipe, torch.Generator().manual_seed(3))
    assert out_image.shape == (3, 32, 64) and out_label.shape == (32, 64)
    assert (out_label[16:] == 255).all() and (out_label[:, 32:] == 255).all()
    assert torch.equal(out_label[:16, :32], out_image[0, :16, :32].long() % 7)
    flipped = [augment(big_image, big_label, Recipe(crop=(32, 64), scale_range=(1.0, 1.0)), torch.Generator().manual_seed(s))
               for s in range(8)]
    assert any(torch.equal(lb, big_label.flip(-1)) for _, lb in flipped) and any(torch.equal(lb, big_label) for _, lb in flipped)
    for im, lb in flipped:  # image and label always move together
        assert torch.equal(lb, im[0].long() % 7)


def test_training_is_deterministic_and_learns():
    first = train(_model(), Blobs(), RECIPE, progress=False)
    second = train(_model(), Blobs(), RECIPE, progress=False)
    assert [h["loss"] for h in first] == [h["loss"] for h in second]
    losses = [h["loss"] for h in first]
    assert sum(losses[-4:]) < sum(losses[:4])


def test_resume_follows_the_uninterrupted_curve(tmp_path):
    full = train(_model(), Blobs(), RECIPE, progress=False)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(_model(), Blobs(fail_at=2 * 6), RECIPE, checkpoint=ckpt, progress=False)  # dies in step 7
    assert torch.load(ckpt, weights_only=True)["step"] == 4
    resumed = train(_model(), Blobs(), RECIPE, checkpoint=ckpt, progress=False)
    assert [h["loss"] for h in resumed] == pytest.approx([h["loss"] for h in full], rel=1e-5)
    with pytest.raises(TrainError, match="another recipe"):
        train(_model(), Blobs(), Recipe(steps=13, batch_size=2, crop=(32, 64)), checkpoint=ckpt, progress=False)


def test_evaluate_reports_miou_and_accuracy():
    model = _model()
    train(model, Blobs(), RECIPE, progress=False)
    result = evaluate(model, Blobs(n=3, seed=9), num_classes=3)
    assert 0 <= result["miou"] <= 100 and 0 <= result["pixel_accuracy"] <= 100
    assert len(result["per_class_iou"]) == 3
