"""Shared pieces of the style and pair tests: prompt lists and a tiny plugin generator."""

TRAIN = [f"train prompt {i}" for i in range(8)]
TEST = [f"test prompt {i}" for i in range(5)]

PLUGIN = '''
import os, time
from dataclasses import dataclass
import torch
from pe3d.styles import Pair, PairGenerator, register_generator

@register_generator("{gname}")
class TinyGenerator(PairGenerator):
    """Random images (fast); edited = shifted colours; optional per-pair delay from $TINY_DELAY."""

    @dataclass
    class Params:
        shift: float = 0.25

    def generate(self, indices):
        res = self.spec.pairs.resolution
        out = []
        for i in indices:
            time.sleep(float(os.environ.get("TINY_DELAY", "0")))
            rng = self.rng(i)
            image = torch.rand(3, res, res, generator=rng)
            camera = self.sample_camera(rng)
            prompt = self.pick_prompt(rng)
            ref = torch.rand(3, res, res, generator=rng) if self.wants_reference(rng) else None
            out.append(Pair(image, (image + self.params.shift) % 1.0, camera, prompt, ref, identity=i, seed=self.pair_seed(i)))
        return out
'''
