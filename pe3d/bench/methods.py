"""The methods of Table 1, built from our own parts, behind one interface.

* :class:`OursMethod`: the distilled editor, one feed-forward pass (paper: "Ours").
* :class:`TwoStageMethod`: the 2D editor on the input, then the prior reconstructs the
  edited image (paper: "IP2P + Live3D"; here the 2D editor is the style's filter).
* :class:`OptimisationMethod`: the prior's triplane of the input, optimised for ``K`` Adam
  steps so that its render at the input camera matches the 2D edit (paper: the
  optimisation baselines "PTI + CLIP" / "Live3D + CLIP", with the 2D edit as the target
  instead of a CLIP loss).

Every method maps one request (image, camera, prompt, 2D editor) to a triplane; the 2D edit
is computed inside the method that needs it, so its cost is part of that method's time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from pe3d.evaluation.world import edit_with_prompt
from pe3d.images import resize_images
from pe3d.losses import ImageLoss
from pe3d.models.editor import EditorCore
from pe3d.models.prior import PriorModel
from pe3d.rendering.renderer import RenderOutput

Edit2D = Callable[[Tensor], Tensor]
"""The 2D editor: ``[B,3,H,W]`` in [0,1] -> edited ``[B,3,H,W]``."""


@dataclass
class EditRequest:
    """One edit: ``image [1,3,S,S]`` at the model's input size, its ``camera [1,25]``, the text
    ``prompt`` and the style's 2D editor (used by the baselines)."""

    image: Tensor
    camera: Tensor
    prompt: str
    edit_2d: Edit2D


class EditMethod(ABC):
    """A way of turning an :class:`EditRequest` into an edited triplane."""

    name: str = ""
    label: str = ""
    """How the method appears in tables."""

    @property
    @abstractmethod
    def input_size(self) -> int:
        """Side of the images the method takes."""

    @property
    def device(self) -> torch.device:
        """Where the method's model lives (what a timer synchronises)."""
        return next(self.model.parameters()).device

    @property
    @abstractmethod
    def model(self) -> torch.nn.Module:
        """The network the method runs (its editor or prior)."""

    @abstractmethod
    def edit(self, request: EditRequest) -> Tensor:
        """The edited triplane ``[1, 3, C, R, R]``."""

    @abstractmethod
    def render(self, planes: Tensor, cameras: Tensor, resolution: int | None = None) -> RenderOutput:
        """Render ``planes [B,...]`` at ``cameras [B,25]``."""

    def edit_batch(self, requests: list[EditRequest]) -> Tensor:
        """Untimed edits of several requests, ``[N, 3, C, R, R]`` (one at a time unless a method can batch them)."""
        if not requests:
            raise ValueError("no edit requests")
        return torch.cat([self.edit(request) for request in requests])

    def edit_and_render(self, request: EditRequest) -> Tensor:
        """What is timed: the edit plus its render at the input camera (the user sees an image)."""
        planes = self.edit(request)
        self.render(planes, request.camera)
        return planes


class OursMethod(EditMethod):
    """The distilled editor: ``E_t(crossatt(E_high(I), E_p(P)), E_low(I))`` in one pass."""

    name, label = "ours", "Ours (feed-forward editor)"

    def __init__(self, editor: EditorCore) -> None:
        self.editor = editor.eval()

    @property
    def input_size(self) -> int:
        return self.editor.cfg.prior.encoder.image_size

    @property
    def model(self) -> torch.nn.Module:
        return self.editor

    @torch.no_grad()
    def edit(self, request: EditRequest) -> Tensor:
        return edit_with_prompt(self.editor, request.image, request.prompt)

    @torch.no_grad()
    def render(self, planes: Tensor, cameras: Tensor, resolution: int | None = None) -> RenderOutput:
        return self.editor.render(planes, cameras, resolution=resolution, images_only=True)

    def edit_batch(self, requests: list[EditRequest]) -> Tensor:
        """One forward pass for requests sharing a prompt (the editor is feed-forward, so batching changes nothing else)."""
        if len({r.prompt for r in requests}) != 1:
            return super().edit_batch(requests)
        images = torch.cat([r.image for r in requests])
        return self.edit(EditRequest(images, torch.cat([r.camera for r in requests]), requests[0].prompt, requests[0].edit_2d))


class _PriorMethod(EditMethod):
    def __init__(self, prior: PriorModel) -> None:
        self.prior = prior.eval()
        for param in self.prior.parameters():
            param.requires_grad_(False)

    @property
    def input_size(self) -> int:
        return self.prior.cfg.encoder.image_size

    @property
    def model(self) -> torch.nn.Module:
        return self.prior

    @torch.no_grad()
    def render(self, planes: Tensor, cameras: Tensor, resolution: int | None = None) -> RenderOutput:
        return self.prior.render(planes, cameras, resolution=resolution, images_only=True)


class TwoStageMethod(_PriorMethod):
    """2D edit of the input, then the prior's reconstruction of the edited image."""

    name, label = "two_stage", "2D edit → prior (IP2P + Live3D analogue)"

    @torch.no_grad()
    def edit(self, request: EditRequest) -> Tensor:
        return self.prior(request.edit_2d(request.image).clamp(0, 1))


class OptimisationMethod(_PriorMethod):
    """Per-image optimisation of the prior's triplane against the 2D edit at the input camera."""

    name, label = "optimisation", "per-image triplane optimisation"

    def __init__(self, prior: PriorModel, steps: int, lr: float, render_resolution: int, loss: ImageLoss) -> None:
        super().__init__(prior)
        if steps < 0:
            raise ValueError(f"optimisation.steps must be >= 0, got {steps}")
        self.steps, self.lr, self.resolution, self.loss = steps, lr, render_resolution, loss
        self.label = f"per-image triplane optimisation ({steps} steps)"
        self.last_losses: list[float] = []
        """Loss at every step of the latest :meth:`edit` (for tests and logs)."""

    def edit(self, request: EditRequest) -> Tensor:
        with torch.no_grad():
            planes = self.prior(request.image)
            target = request.edit_2d(request.image).clamp(0, 1)
            target = resize_images(target, self.resolution)
        planes = planes.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([planes], lr=self.lr)
        self.last_losses = []
        with torch.enable_grad():
            for _ in range(self.steps):
                render = self.prior.render(planes, request.camera, resolution=self.resolution, images_only=True).image
                loss = self.loss(render, target)["total"]
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                self.last_losses.append(float(loss.detach()))
        return planes.detach()
