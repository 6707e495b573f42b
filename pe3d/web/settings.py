"""Settings of ``pe3d serve`` (a typed dataclass; ``--config`` YAML and ``key=value`` overrides load into it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pe3d.web.limits import UploadLimits

LOCAL_HOST = "127.0.0.1"
"""The default bind address: only this machine can reach the interface."""


@dataclass
class WebSettings:
    """What the web interface serves and how.

    ``weights``: base editor file ("" = the shipped mini editor); ``prior``: the frozen prior
    that supervises adaptation ("" = shipped); ``resolution``: render side of the outputs;
    ``view_yaws_deg``: yaw angles of the novel-view gallery; ``runs_dir``: where adaptation
    runs keep their checkpoints ("" = ``<project>/runs/web-adapt``); ``adapt_max_steps`` and
    ``adapt_max_minutes``: caps of one adaptation (the paper: about 5 minutes); ``refine_steps``:
    test-time detail refinement of every edit (:mod:`pe3d.refinement`, with ``prior``; 0 = the one-pass
    edit): the steps of the page's "refine the detail to the photo" switch, which starts ticked when they
    are above 0 (unset, the switch gives ``pe3d edit``'s 200, about 8 s on a 2-core CPU).
    """

    host: str = LOCAL_HOST
    port: int = 7860
    weights: str = ""
    prior: str = ""
    resolution: int = 64
    view_yaws_deg: list[float] = field(default_factory=lambda: [-30.0, 0.0, 30.0])
    runs_dir: str = ""
    adapt_max_steps: int = 400
    adapt_max_minutes: float = 5.0
    refine_steps: int = 0
    limits: UploadLimits = field(default_factory=UploadLimits)

    def __post_init__(self) -> None:
        if not 8 <= self.resolution <= 1024:
            raise ValueError(f"resolution must be in [8, 1024], got {self.resolution}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if not self.view_yaws_deg:
            raise ValueError("view_yaws_deg must name at least one yaw angle")
        if self.refine_steps < 0:
            raise ValueError(f"refine_steps must be >= 0, got {self.refine_steps}")
        if self.adapt_max_steps < 1:
            raise ValueError(f"adapt_max_steps must be >= 1, got {self.adapt_max_steps}")
