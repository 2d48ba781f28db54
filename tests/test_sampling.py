"""Patch sampling (scoredenoise.sampling): lazy reads, held-out validation rows, aligned
targets."""

import numpy as np
import pytest

import scoredenoise as sd
from scoredenoise.sampling import PatchSampler


class CountingArray:
    """A lazily generated uint16 stack that records how many bytes are read."""

    def __init__(self, shape):
        self.shape, self.dtype, self.ndim = shape, np.dtype(np.uint16), len(shape)
        self.bytes_read = 0

    def __getitem__(self, idx):
        shape = []
        for i, n in zip(idx, self.shape):
            if isinstance(i, slice):
                shape.append(len(range(*i.indices(n))))
        block = np.random.default_rng(len(shape)).integers(100, 200, shape).astype(np.uint16)
        self.bytes_read += block.nbytes
        return block


def test_training_reads_patches_lazily():
    stack = CountingArray((2000, 1024, 1024))  # 4 GB if loaded
    m = sd.train(stack, axes="ZYX", preset="small", steps=3, patch_size=32, batch_size=4,
                 seed=0)
    total = 2 * np.prod(stack.shape)
    assert 0 < stack.bytes_read < 1e-4 * total
    assert m.meta["data"][0]["shape"] == [2000, 1024, 1024]


def test_sampler_validation_rows_are_held_out():
    img = np.tile(np.arange(100, dtype=np.float32)[:, None], (1, 40))  # value = row index
    s = PatchSampler(img, dims=2, patch_size=16, val_fraction=0.2, augment=False, rng=0)
    tr, _ = s.draw(200)
    va, _ = s.draw(50, split="val")
    assert tr.max() < 80 and va.min() >= 80


def test_small_validation_fraction_keeps_one_patch_height():
    """On the bundled 256-row sample any fraction below 0.25 failed ("the validation rows
    (26) are fewer than the patch height 64"): the held-out band is at least one patch."""
    img = np.tile(np.arange(256, dtype=np.float32)[:, None], (2, 1, 80))  # value = row
    s = PatchSampler(img, axes="SYX", dims=2, patch_size=64, val_fraction=0.05, rng=0,
                     augment=False)
    tr, _ = s.draw(100)
    va, _ = s.draw(20, split="val")
    assert tr.max() < 192 and va.min() >= 192  # the last 64 rows, not 13
    with pytest.raises(ValueError, match=r"smaller than the patch size .* 64 rows for valid"):
        PatchSampler(img[:, :100], axes="SYX", patch_size=64, val_fraction=0.05)


def test_sampler_targets_stay_aligned_under_augmentation():
    rng = np.random.default_rng(0)
    img = rng.random((3, 50, 50)).astype(np.float32)
    s = PatchSampler(img, axes="SYX", dims=2, patch_size=16, targets=2 * img, rng=1)
    x, t = s.draw(20)
    np.testing.assert_allclose(t, 2 * x)
