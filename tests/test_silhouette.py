"""The silhouette ring of a ground-truth mask, the PSNR split on and off it, and which way a render's outline
is off (pe3d.metrics.silhouette)."""

from __future__ import annotations

import pytest
import torch

from pe3d.metrics.silhouette import outline_errors, silhouette_ring, split_ring_psnr


def _square(size: int = 32, lo: int = 10, hi: int = 20) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size, dtype=torch.bool)
    mask[..., lo:hi, lo:hi] = True
    return mask


def test_ring_is_one_pixel_each_side_of_the_outline():
    mask = _square()
    ring = silhouette_ring(mask)
    k = 10
    inner, outer = k * k - (k - 2) ** 2, (k + 2) ** 2 - k * k
    assert int(ring.sum()) == inner + outer
    assert bool(ring[..., 10, 15]) and bool(ring[..., 9, 15]) and bool(ring[..., 9, 9])  # edge, outside, corner
    assert not bool(ring[..., 11, 15]) and not bool(ring[..., 8, 15]) and not bool(ring[..., 15, 15])
    wide = silhouette_ring(mask, width=2)
    assert int(wide.sum()) == (k * k - (k - 4) ** 2) + ((k + 4) ** 2 - k * k)


def test_the_image_border_is_not_an_outline():
    mask = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    mask[..., 10:, :] = True  # a torso cut by the frame: its only outline is the top edge
    ring = silhouette_ring(mask)
    assert int(ring.sum()) == 2 * 16
    assert ring[0, 0, 9:11].all() and not ring[0, 0, 15].any() and not ring[0, 0, 10:, 0][1:].any()


def test_a_one_pixel_shift_puts_all_the_error_on_the_ring():
    mask = _square()
    target = torch.where(mask, torch.tensor(0.2), torch.tensor(1.0)).expand(1, 3, 32, 32).clone()
    shifted = torch.roll(target, shifts=1, dims=-1)  # the outline one pixel off
    split = split_ring_psnr(shifted, target, mask)
    assert split.ring_error_share == pytest.approx(1.0)
    assert split.off_ring_psnr == pytest.approx(100.0)  # no error off the ring (PSNR of a zero error, clamped)
    assert split.ring_psnr < 10.0
    blurred = target.clone()
    blurred[..., 15, 15] = 0.7  # an error inside the head, off the ring
    inside = split_ring_psnr(blurred, target, mask)
    assert inside.ring_error_share == pytest.approx(0.0) and inside.ring_psnr == pytest.approx(100.0)
    assert inside.ring_share == pytest.approx(float(silhouette_ring(mask).float().mean()))


def test_outline_errors_tell_too_wide_from_too_narrow():
    mask = _square()  # 10 x 10 pixels of 32 x 32
    wider = torch.nn.functional.max_pool2d(mask.float(), 3, stride=1, padding=1)  # one pixel more all round: 12 x 12
    wide = outline_errors(0.9 * wider, mask)
    assert wide.too_wide == pytest.approx((144 - 100) / 1024) and wide.too_narrow == 0.0
    narrow = outline_errors(0.9 * (1 - torch.nn.functional.max_pool2d(1 - mask.float(), 3, stride=1, padding=1)), mask)
    assert narrow.too_narrow == pytest.approx((100 - 64) / 1024) and narrow.too_wide == 0.0
    faint = outline_errors(0.4 * wider, mask)  # opacity at or under the threshold is not drawn
    assert faint.too_wide == 0.0 and faint.too_narrow == pytest.approx(100 / 1024)
    exact = outline_errors(mask.float(), mask)
    assert exact.too_wide == 0.0 and exact.too_narrow == 0.0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="mask must be"):
        silhouette_ring(torch.zeros(1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="width"):
        silhouette_ring(torch.zeros(1, 1, 8, 8, dtype=torch.bool), width=0)
    with pytest.raises(ValueError, match="differ"):
        split_ring_psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 9, 9), torch.zeros(1, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="opacity"):
        outline_errors(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 9, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="threshold"):
        outline_errors(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.bool), threshold=1.0)
