"""Write the frontal render of one world identity: the portrait of docs/images/web_ui.png.

    python docs/tools/world_portrait.py OUT.png [INDEX] [RESOLUTION]

Defaults: held-out identity 1,000,000 (the first one, ``pe3d.world.HELDOUT_START``), 256² pixels,
2x supersampled, world seed 0, the frontal camera of ``pe3d eval`` (yaw 0, pitch 0).
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

from pe3d.geometry import label_from_yaw_pitch
from pe3d.world import HELDOUT_START, render_identity, sample_identity


def main(out: str, index: int = HELDOUT_START, resolution: int = 256) -> None:
    render = render_identity(sample_identity(0, index), label_from_yaw_pitch([0.0], [0.0]),
                             resolution=resolution, supersample=2, num_threads=None)
    pixels = (render.rgb[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(out)
    print(f"wrote {out} (identity {index}, {resolution}x{resolution})")


if __name__ == "__main__":
    if not 1 <= len(sys.argv) - 1 <= 3:
        sys.exit(__doc__)
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
