"""The analytic 3D field of a procedural head: a signed distance function with part labels.

A head is a set of smooth primitives (ellipsoids, tapered capsules, tori) grouped into
*groups*. Inside a group the primitives are blended with an exponential smooth union of
radius ``k`` (``k = 0`` is a hard union); a group can be carved by *cutters* (ellipsoids
subtracted with a smooth max), clipped by half-spaces, and roughened with a small
sinusoidal displacement (curly hair). The groups are combined with a hard union, and the
whole head is clipped below ``y = -0.45`` so it stays inside ``[-0.5, 0.5]^3``.

Every primitive carries a :class:`Part` label and a base colour. At a surface point the
part is the one of the nearest primitive of the nearest group; :meth:`HeadField.albedo`
adds procedural detail (iris and pupil, lash line, nostrils, hair strands, mouth line).

Everything is evaluated in batched ``torch`` (float32) with all primitives of one kind
handled by a single matrix product, which keeps one SDF evaluation of a few thousand
points well under a millisecond on a 2-core CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Sequence

import torch
from torch import Tensor

from pe3d.world.identity import Identity

__all__ = ["Part", "PART_NAMES", "HeadField", "build_field", "Y_CLIP", "HEAD_Y"]

Y_CLIP: float = -0.45
"""Everything below this height is clipped away (keeps shoulders inside the unit box)."""


class Part(IntEnum):
    """Semantic part labels of the rendered masks (``BACKGROUND`` is 0)."""

    BACKGROUND = 0
    SKIN = 1
    HAIR = 2
    EYES = 3
    LIPS = 4
    BROWS = 5
    BEARD = 6
    GLASSES = 7
    CLOTHES = 8


PART_NAMES: dict[int, str] = {int(p): p.name.lower() for p in Part}


def _rotation(ax: float = 0.0, ay: float = 0.0, az: float = 0.0) -> Tensor:
    """Rotation matrix ``Rz @ Ry @ Rx`` (radians); its columns are the local axes in world."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float32)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float32)
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float32)
    return rz @ ry @ rx


@dataclass
class _Group:
    name: str
    k: float  # smooth-union radius, 0 = hard union
    members: list[int] = field(default_factory=list)  # builder ids
    cutters: list[int] = field(default_factory=list)  # builder ids of cutter ellipsoids
    cut_k: float = 0.006
    planes: list[tuple[float, float, float, float]] = field(default_factory=list)  # keep n.p <= h
    curl_amp: float = 0.0
    curl_freq: float = 0.0


@dataclass
class _Prim:
    kind: str  # "ell", "cap", "tor"
    params: dict
    part: int
    colour: tuple[float, float, float]


class _Builder:
    def __init__(self) -> None:
        self.prims: list[_Prim] = []
        self.groups: list[_Group] = []

    def group(self, name: str, k: float, **kwargs) -> _Group:
        g = _Group(name, k, **kwargs)
        self.groups.append(g)
        return g

    def _add(self, group: _Group | None, prim: _Prim) -> int:
        self.prims.append(prim)
        pid = len(self.prims) - 1
        if group is not None:
            group.members.append(pid)
        return pid

    def ellipsoid(self, group, centre, radii, part=Part.SKIN, colour=(1, 1, 1), rot: Tensor | None = None) -> int:
        rot = torch.eye(3) if rot is None else rot
        return self._add(group, _Prim("ell", dict(c=centre, r=radii, rot=rot), int(part), tuple(colour)))

    def capsule(self, group, a, b, ra, rb=None, part=Part.SKIN, colour=(1, 1, 1)) -> int:
        rb = ra if rb is None else rb
        return self._add(group, _Prim("cap", dict(a=a, b=b, ra=ra, rb=rb), int(part), tuple(colour)))

    def torus(self, group, centre, major, minor, part=Part.GLASSES, colour=(0, 0, 0), rot=None, sx=1.0, sy=1.0) -> int:
        rot = torch.eye(3) if rot is None else rot
        params = dict(c=centre, R=major, r=minor, rot=rot, sx=sx, sy=sy)
        return self._add(group, _Prim("tor", params, int(part), tuple(colour)))

    def cutter(self, group: _Group, centre, radii, rot=None) -> int:
        pid = self.ellipsoid(None, centre, radii, Part.BACKGROUND, (1, 1, 1), rot)
        group.cutters.append(pid)
        return pid

    def compile(self, info: dict | None = None) -> "HeadField":
        return HeadField(self.prims, self.groups, info or {})


class HeadField:
    """A compiled SDF of one head. Use :func:`build_field` to make one from an :class:`Identity`.

    Main methods (``p`` is ``[N, 3]`` world points, float32):

    * :meth:`sdf` ``-> [N]`` signed distance (negative inside), a conservative-ish bound
      suitable for sphere tracing with a relaxation factor ``<= 0.9``.
    * :meth:`sdf_parts` ``-> (distance [N], primitive index [N], part [N])``.
    * :meth:`albedo` ``(p, prim, part) -> [N, 3]`` surface colour in ``[0, 1]``.
    """

    def __init__(self, prims: list[_Prim], groups: list[_Group], info: dict) -> None:
        self.info = info
        order = [i for i, p in enumerate(prims) if p.kind == "ell"]
        order += [i for i, p in enumerate(prims) if p.kind == "cap"]
        order += [i for i, p in enumerate(prims) if p.kind == "tor"]
        remap = {old: new for new, old in enumerate(order)}
        ordered = [prims[i] for i in order]
        self.num_prims = len(ordered)

        ells = [p for p in ordered if p.kind == "ell"]
        caps = [p for p in ordered if p.kind == "cap"]
        tors = [p for p in ordered if p.kind == "tor"]
        self.n_ell, self.n_cap, self.n_tor = len(ells), len(caps), len(tors)

        f32 = dict(dtype=torch.float32)
        # ellipsoids: q = A @ pT + b, A[j*K + k, :] = R_k[:, j]; q viewed as [3, K, N]
        if ells:
            rots = torch.stack([p.params["rot"].float() for p in ells])  # [K, 3, 3]
            cen = torch.tensor([p.params["c"] for p in ells], **f32)  # [K, 3]
            rad = torch.tensor([p.params["r"] for p in ells], **f32)  # [K, 3]
            self.ell_A = rots.permute(2, 0, 1).reshape(-1, 3).contiguous()  # [3K, 3]
            self.ell_b = (-(cen[:, :, None] * rots).sum(1)).T.reshape(-1, 1).contiguous()  # [3K, 1]
            self.ell_w0 = (1.0 / rad**2).T.contiguous()[:, :, None]  # [3, K, 1]
            self.ell_w1 = (1.0 / rad**4).T.contiguous()[:, :, None]
            self.ell_centres, self.ell_radii, self.ell_rots = cen, rad, rots
        if caps:
            a = torch.tensor([p.params["a"] for p in caps], **f32)
            b = torch.tensor([p.params["b"] for p in caps], **f32)
            ba = b - a
            baba = (ba * ba).sum(-1, keepdim=True).clamp_min(1e-12)
            self.cap_a = a.T.contiguous()[:, :, None]  # [3, K, 1]
            self.cap_ba = ba.T.contiguous()[:, :, None]
            self.cap_ba_over = (ba / baba).contiguous()  # [K, 3]
            self.cap_off = (-(a * ba).sum(-1, keepdim=True) / baba).contiguous()  # [K, 1]
            self.cap_ra = torch.tensor([p.params["ra"] for p in caps], **f32)[:, None]
            self.cap_dr = torch.tensor([p.params["rb"] - p.params["ra"] for p in caps], **f32)[:, None]
        if tors:
            rots = torch.stack([p.params["rot"].float() for p in tors])
            cen = torch.tensor([p.params["c"] for p in tors], **f32)
            self.tor_A = rots.permute(2, 0, 1).reshape(-1, 3).contiguous()
            self.tor_b = (-(cen[:, :, None] * rots).sum(1)).T.reshape(-1, 1).contiguous()
            self.tor_R = torch.tensor([p.params["R"] for p in tors], **f32)[:, None]
            self.tor_r = torch.tensor([p.params["r"] for p in tors], **f32)[:, None]
            self.tor_sx = torch.tensor([p.params["sx"] for p in tors], **f32)[:, None]
            self.tor_sy = torch.tensor([p.params["sy"] for p in tors], **f32)[:, None]

        self.part_of_prim = torch.tensor([p.part for p in ordered], dtype=torch.long)
        self.colour_of_prim = torch.tensor([p.colour for p in ordered], **f32).clamp(0, 1)

        self.groups: list[dict] = []
        member_mask = torch.zeros(len(groups), self.num_prims, dtype=torch.bool)
        for gi, g in enumerate(groups):
            if not g.members:
                continue
            idx = torch.tensor([remap[m] for m in g.members], dtype=torch.long)
            member_mask[len(self.groups), idx] = True
            srt = idx.sort().values
            contiguous = bool((srt[1:] - srt[:-1] == 1).all()) if len(srt) > 1 else True
            entry = dict(
                name=g.name,
                idx=idx,
                sel=not contiguous,
                lo=int(srt[0]),
                hi=int(srt[-1]) + 1,
                k=float(g.k),
                cut=torch.tensor([remap[c] for c in g.cutters], dtype=torch.long) if g.cutters else None,
                cut_k=float(g.cut_k),
                planes=torch.tensor([(a, b_, c, -h) for a, b_, c, h in g.planes], **f32) if g.planes else None,
                curl_amp=float(g.curl_amp),
                curl_freq=float(g.curl_freq),
            )
            self.groups.append(entry)
        self.group_mask = member_mask[: len(self.groups)].T.contiguous()  # [K, G]
        self.group_of_prim = torch.full((self.num_prims,), -1, dtype=torch.long)
        for gi, g in enumerate(self.groups):
            self.group_of_prim[g["idx"]] = gi
        self._compile_groups(len(ordered))

        # axis-aligned bounding box of all union members (cutters excluded), clipped below
        lo = torch.full((3,), 1e3)
        hi = torch.full((3,), -1e3)
        for gi, p in enumerate(ordered):
            if self.group_of_prim[gi] < 0:
                continue
            plo, phi = _prim_aabb(p)
            lo, hi = torch.minimum(lo, plo), torch.maximum(hi, phi)
        lo[1] = max(float(lo[1]), Y_CLIP)
        self.bbox_lo = (lo - 0.01).clamp(-0.6, 0.6)
        self.bbox_hi = (hi + 0.01).clamp(-0.6, 0.6)
        self._grid: tuple[Tensor, float] | None = None

    def _compile_groups(self, k_total: int) -> None:
        """Dense per-group tensors for the batched :meth:`group_distances_T`."""
        ng = len(self.groups)
        member = self.group_mask.T.float()  # [G, K]
        self._member = member.contiguous()
        rows = torch.where(self.group_of_prim >= 0, self.group_of_prim, ng)
        self._group_row = rows[:, None].contiguous()  # [K, 1] group of each primitive (ng: cutter)
        k_g = torch.tensor([max(g["k"], 1e-5) for g in self.groups], dtype=torch.float32)
        self._k_group = k_g[:, None]
        self._kinv_prim = (member.T @ (1.0 / k_g))[:, None].contiguous()  # [K, 1], 0 for cutters
        cut_row = torch.full((k_total,), ng, dtype=torch.long)
        for gi, g in enumerate(self.groups):
            if g["cut"] is not None:
                cut_row[g["cut"]] = gi
        self._has_cut = any(g["cut"] is not None for g in self.groups)
        self._cut_row = cut_row[:, None].contiguous()  # [K, 1] group a cutter carves (ng: none)
        self._cut_k = torch.tensor([max(g["cut_k"], 1e-6) for g in self.groups])[:, None]
        planes, owner = [], []
        for gi, g in enumerate(self.groups):
            if g["planes"] is not None:
                planes.append(g["planes"])
                owner += [gi] * g["planes"].shape[0]
        self._planes = torch.cat(planes) if planes else None
        if planes:
            pen = torch.full((ng, len(owner)), 1e3)
            pen[torch.tensor(owner), torch.arange(len(owner))] = 0.0
            self._plane_pen = pen[:, :, None]  # [G, P, 1]
        curl = [(gi, g["curl_freq"], g["curl_amp"]) for gi, g in enumerate(self.groups) if g["curl_amp"] > 0]
        self._curl = None
        if curl:
            rows = torch.tensor([c[0] for c in curl])
            freq = torch.tensor([c[1] for c in curl])[:, None, None]
            amp = torch.tensor([c[2] for c in curl])[:, None]
            scale = 1.0 / (1.0 + amp * freq[:, :, 0] * 1.5)
            self._curl = (rows, freq, amp, scale)

    def coarse_grid(self, cell: float = 0.035) -> tuple[Tensor, float]:
        """A coarse SDF grid over the bounding box for empty-space skipping (built lazily).

        Returns:
            ``(grid [1, 1, D, H, W], margin)``: SDF samples at the nodes of a regular grid
            spanning ``bbox_lo..bbox_hi`` (``W`` along x, ``H`` along y, ``D`` along z) and a
            margin such that ``trilinear(grid)(x) - margin`` is a lower bound of the SDF of a
            1-Lipschitz field inside the box (half the cell diagonal).
        """
        if self._grid is None:
            size = self.bbox_hi - self.bbox_lo
            counts = [max(int(math.ceil(float(s) / cell)) + 1, 2) for s in size]
            axes = [torch.linspace(float(self.bbox_lo[i]), float(self.bbox_hi[i]), counts[i]) for i in range(3)]
            zz, yy, xx = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
            pts = torch.stack((xx, yy, zz), dim=-1).reshape(-1, 3)
            vals = torch.cat([self.sdf(chunk) for chunk in pts.split(8192)])
            grid = vals.view(1, 1, counts[2], counts[1], counts[0])
            spacing = size / torch.tensor([c - 1 for c in counts], dtype=torch.float32)
            margin = 0.5 * float(spacing.norm())
            self._grid = (grid, margin)
        return self._grid

    # ------------------------------------------------------------------ distances
    # Internally points are stored transposed, ``pT [3, N]``, and distances as ``[K, N]``:
    # reductions over the (few) primitives then run over the leading dimension, which is
    # several times faster on the CPU than reducing a short trailing dimension.
    def prim_distances_T(self, pT: Tensor) -> Tensor:
        """Distances ``[K, N]`` from points ``pT [3, N]`` to every primitive (cutters included)."""
        out = []
        n = pT.shape[1]
        if self.n_ell:
            q = torch.addmm(self.ell_b, self.ell_A, pT).view(3, self.n_ell, n)
            q = q * q
            w0, w1 = self.ell_w0, self.ell_w1
            k0 = torch.addcmul(torch.addcmul(q[0] * w0[0], q[1], w0[1]), q[2], w0[2]).sqrt_()
            k1 = torch.addcmul(torch.addcmul(q[0] * w1[0], q[1], w1[1]), q[2], w1[2]).sqrt_().clamp_min_(1e-6)
            out.append(k0 * (k0 - 1.0) / k1)
        if self.n_cap:
            h = torch.addmm(self.cap_off, self.cap_ba_over, pT).clamp_(0.0, 1.0)  # [K, N]
            diff = pT[:, None, :] - self.cap_a - self.cap_ba * h  # [3, K, N]
            diff = diff * diff
            dist = (diff[0] + diff[1] + diff[2]).sqrt_()
            out.append(dist - torch.addcmul(self.cap_ra, self.cap_dr, h))
        if self.n_tor:
            q = torch.addmm(self.tor_b, self.tor_A, pT).view(3, self.n_tor, n)
            qx, qy = q[0] * self.tor_sx, q[1] * self.tor_sy
            rxy = (qx * qx + qy * qy).sqrt_() - self.tor_R
            out.append((rxy * rxy + q[2] * q[2]).sqrt_() - self.tor_r)
        return out[0] if len(out) == 1 else torch.cat(out, dim=0)

    def group_distances_T(self, pT: Tensor, dists: Tensor) -> Tensor:
        """Distances ``[G, N]`` to every group, given ``prim_distances_T`` ``[K, N]``.

        All groups are processed at once (a handful of batched operations instead of a loop
        of many tiny ones): per-group minimum by a masked ``amin``, the exponential smooth
        union by one matrix product with the membership matrix, then cutters (smooth max
        with the negated nearest cutter), clipping half-spaces, the curl displacement and the
        global floor ``y >= Y_CLIP``.
        """
        # smooth union: D_g = m_g - k_g log sum_{i in g} exp((m_g - d_i) / k_g)
        n = dists.shape[1]
        ng = len(self.groups)
        m_all = dists.new_full((ng + 1, n), 1e3)  # row ng collects the primitives of no group
        m_all.scatter_reduce_(0, self._group_row.expand(-1, n), dists, "amin")
        m_i = m_all.index_select(0, self._group_row[:, 0])  # [K, N] each primitive's group minimum
        # (clamped: exp of large negative numbers takes a very slow denormal path on the CPU)
        e = torch.exp(((m_i - dists) * self._kinv_prim).clamp_(min=-30.0))  # cutters: exp(0) = 1, masked below
        g = m_all[:ng] - self._k_group * torch.log(self._member @ e)
        if self._has_cut:
            c = dists.new_full((ng + 1, n), 1e3)  # nearest cutter of each group (1e3 if none)
            c.scatter_reduce_(0, self._cut_row.expand(-1, n), dists, "amin")
            g = _smooth_max(g, -c[:ng], self._cut_k)
        if self._planes is not None:
            pl = torch.addmm(self._planes[:, 3:], self._planes[:, :3], pT)  # [P, N] = n.p - h
            g = torch.maximum(g, (pl - self._plane_pen).amax(dim=1))
        if self._curl is not None:
            rows, freq, amp, scale = self._curl
            s = torch.sin(pT * freq)  # [C, 3, N]
            bump = s[:, 0] * s[:, 1] * s[:, 2]
            # divide by a Lipschitz bound of the displaced field to keep sphere tracing safe
            g = g.index_put((rows,), (g[rows] - amp * bump) * scale)
        return torch.maximum(g, Y_CLIP - pT[1])  # keep y >= Y_CLIP

    chunk: int = 2048
    """Points per evaluation block: large temporaries are much slower on the CPU (allocation
    and cache misses), so bigger batches are evaluated in blocks of this many points."""

    def sdf_T(self, pT: Tensor) -> Tensor:
        """Signed distance ``[N]`` of transposed points ``pT [3, N]``."""
        n = pT.shape[1]
        if n > 2 * self.chunk:
            return torch.cat([self.sdf_T(pT[:, i : i + self.chunk]) for i in range(0, n, self.chunk)])
        return self.group_distances_T(pT, self.prim_distances_T(pT)).amin(dim=0)

    def prim_distances(self, p: Tensor) -> Tensor:
        """Distances ``[N, K]`` from points ``[N, 3]`` to every primitive (cutters included)."""
        return self.prim_distances_T(p.T.contiguous()).T

    def sdf(self, p: Tensor) -> Tensor:
        """Signed distance ``[N]`` of points ``[N, 3]`` (negative inside)."""
        return self.sdf_T(p.T.contiguous())

    def sdf_parts(self, p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(distance [N], primitive index [N], part [N])`` of points ``[N, 3]``."""
        pT = p.T.contiguous()
        dists = self.prim_distances_T(pT)
        g = self.group_distances_T(pT, dists)
        d = g.amin(dim=0)
        gi = _argmin0(g)
        penalty = (~self.group_mask[:, gi]).float() * 1e3  # [K, N]
        prim = _argmin0(dists + penalty)
        return d, prim, self.part_of_prim[prim]

    def normals(self, p: Tensor, eps: float = 1.5e-3) -> Tensor:
        """Unit outward normals ``[N, 3]`` by the tetrahedron finite-difference stencil."""
        k = torch.tensor([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], dtype=p.dtype)
        pts = (p[None] + eps * k[:, None, :]).reshape(-1, 3)
        d = self.sdf(pts).view(4, -1)
        n = (d[:, :, None] * k[:, None, :]).sum(0)
        return torch.nn.functional.normalize(n, dim=-1)

    # ------------------------------------------------------------------ colour
    def albedo(self, p: Tensor, prim: Tensor, part: Tensor) -> Tensor:
        """Surface colour ``[N, 3]`` at surface points ``p`` with their primitive and part."""
        col = self.colour_of_prim[prim].clone()
        info = self.info

        eyes = part == Part.EYES
        if eyes.any() and "eye_centres" in info:
            pe = p[eyes]
            side = (pe[:, 0] > 0).long()
            c = info["eye_centres"][side]
            r = info["eye_radii"][side]
            q = (pe - c) / r
            cosz = q[:, 2] / q.norm(dim=1).clamp_min(1e-6)
            ang = torch.acos(cosz.clamp(-1, 1))
            iris_a, pupil_a = info["iris_angle"], info["iris_angle"] * 0.42
            white = torch.tensor([0.94, 0.92, 0.89])
            iris = info["eye_rgb"] * (1.05 - 0.45 * (ang / iris_a).clamp(0, 1) ** 2)[:, None]
            ce = torch.where((ang < iris_a)[:, None], iris, white.expand_as(iris))
            ce = torch.where((ang < pupil_a)[:, None], torch.full_like(ce, 0.03), ce)
            # dark limbal ring
            ring = ((ang - iris_a).abs() < 0.06)[:, None]
            ce = torch.where(ring, ce * 0.45, ce)
            col[eyes] = ce

        skin = part == Part.SKIN
        if skin.any():
            ps = p[skin]
            cs = col[skin]
            # a light cheek blush
            blush = torch.zeros(ps.shape[0])
            for c in info.get("blush_centres", []):
                blush = blush + torch.exp(-((ps - c) ** 2).sum(1) / (2 * 0.028**2))
            cs = cs * (1.0 - 0.06 * blush.clamp(0, 1)[:, None] * torch.tensor([0.0, 1.0, 0.9]))
            # lash line / eyelid rim: skin on the wall of the eye sockets
            if "socket_centres" in info:
                dark = torch.zeros(ps.shape[0], dtype=torch.bool)
                for c, r in zip(info["socket_centres"], info["socket_radii"]):
                    u = (((ps - c) / (r * torch.tensor([1.12, 1.22, 1.1]))) ** 2).sum(1)
                    dark |= u < 1.0
                cs = torch.where(dark[:, None], cs * 0.35 + torch.tensor([0.03, 0.02, 0.02]), cs)
            # nostrils
            for c in info.get("nostrils", []):
                dn = ((ps - c) ** 2).sum(1) < info["nostril_r"] ** 2
                cs = torch.where(dn[:, None], cs * 0.3, cs)
            col[skin] = cs

        hair = (part == Part.HAIR) | (part == Part.BEARD) | (part == Part.BROWS)
        if hair.any():
            ph = p[hair]
            az = torch.atan2(ph[:, 0], ph[:, 2] + 0.04)
            strands = torch.sin(az * 71.0 + torch.sin(ph[:, 1] * 37.0) * 2.5)
            locks = torch.sin(az * 19.0 + ph[:, 1] * 9.0 + torch.sin(az * 7.0) * 2.0)
            shade = 0.9 + 0.06 * strands + 0.06 * locks
            col[hair] = col[hair] * shade[:, None]

        lips = part == Part.LIPS
        if lips.any() and "mouth_y" in info:
            pl = p[lips]
            line = (pl[:, 1] - info["mouth_y"]).abs() < info["mouth_line"]
            col[lips] = torch.where(line[:, None], col[lips] * 0.3, col[lips])

        clothes = part == Part.CLOTHES
        if clothes.any():
            pc = p[clothes]
            # a subtle collar seam around the neck
            seam = (torch.sqrt(pc[:, 0] ** 2 + (pc[:, 2] + 0.05) ** 2) - info.get("collar_r", 0.09)).abs() < 0.006
            col[clothes] = torch.where(seam[:, None], col[clothes] * 0.7, col[clothes])
        return col.clamp(0.0, 1.0)


def _argmin0(x: Tensor) -> Tensor:
    """``argmin`` over dim 0 of ``[K, N]`` (ties: the last index); much faster than
    ``Tensor.argmin(0)`` on the CPU for a short leading dimension."""
    rows = torch.arange(x.shape[0], dtype=x.dtype, device=x.device)[:, None]
    return ((x == x.amin(dim=0)) * rows).amax(dim=0).long()


def _smooth_max(a: Tensor, b: Tensor, k: Tensor | float) -> Tensor:
    """Polynomial smooth maximum of ``a`` and ``b`` with radius ``k`` (exactly ``a`` where ``b << a``)."""
    h = ((a - b) / (2.0 * k) + 0.5).clamp_(0.0, 1.0)  # 1 where a dominates
    g = 1.0 - h
    return a + g * ((b - a) + k * h)


def _prim_aabb(p: _Prim) -> tuple[Tensor, Tensor]:
    """A conservative axis-aligned box ``(lo [3], hi [3])`` around a primitive."""
    if p.kind == "ell":
        c, r = torch.tensor(p.params["c"]), max(p.params["r"])
        return c - r, c + r
    if p.kind == "cap":
        a, b = torch.tensor(p.params["a"]), torch.tensor(p.params["b"])
        r = max(p.params["ra"], p.params["rb"])
        return torch.minimum(a, b) - r, torch.maximum(a, b) + r
    c = torch.tensor(p.params["c"])
    r = p.params["R"] * max(p.params["sx"], p.params["sy"], 1.0) + p.params["r"]
    return c - r, c + r


def _surface_z(fld: HeadField, xy: Sequence[tuple[float, float]], z_start: float = 0.4) -> list[float]:
    """Front surface depth ``z`` of a (partial) field at points ``(x, y)``, marching along ``-z``."""
    pts = torch.tensor([[x, y, z_start] for x, y in xy], dtype=torch.float32)
    z_prev = d_prev = None
    for _ in range(40):
        d = fld.sdf(pts)
        step = d * 0.95
        if d_prev is not None:  # secant acceleration, as in the renderer
            drop = d_prev - d
            ok = (drop > 0) & (d > 0)
            secant = d * (z_prev - pts[:, 2]) / drop.clamp_min(1e-9)
            step = torch.where(ok, torch.minimum(torch.maximum(secant * 0.95, step), step * 6), step)
        z_prev, d_prev = pts[:, 2].clone(), d
        pts[:, 2] -= step
        if bool((d.abs() < 2e-5).all()):
            break
    return pts[:, 2].tolist()


HEAD_Y: float = -0.04
"""Vertical offset added to the canonical head of an :class:`Identity`: the eyes end up near
``y = 0.01``, just above the image centre of the frontal FFHQ camera (as in FFHQ crops), and
the chin near ``y = -0.22``."""


def build_field(ident: Identity) -> HeadField:
    """Compile the SDF of an identity (a few milliseconds; cached by the renderer)."""
    oy = HEAD_Y
    skin = ident.skin_rgb
    hw, hh, hd = ident.head_width, ident.head_height, ident.head_depth
    jw, jh, jd = ident.jaw_width, ident.jaw_height, ident.jaw_depth
    ey, es, er = ident.eye_height + oy, ident.eye_spacing, ident.eye_radius
    my, mw, lt = ident.mouth_height + oy, ident.mouth_width, ident.lip_thickness
    cran_c = (0.0, 0.07 + oy, -0.03)
    jaw_c = (0.0, -0.045 + oy, 0.012)
    cs, chs, nw = ident.cheek_size, ident.chin_size, ident.nose_width

    # --- stage 1: the skull, to place the cheeks, chin and brow ridge on its surface
    b0 = _Builder()
    g0 = b0.group("head", k=0.016)
    b0.ellipsoid(g0, cran_c, (hw, hh, hd))
    b0.ellipsoid(g0, jaw_c, (jw, jh, jd))
    z_cheek, z_chin, z_brow = _surface_z(b0.compile(), [(0.062, ey - 0.05), (0.0, my - 0.05), (0.0, ey + 0.03)])

    b = _Builder()
    head = b.group("head", k=0.016, cut_k=0.005)
    lips = b.group("lips", k=0.004)
    hard = b.group("hard", k=0.0)
    b.ellipsoid(head, cran_c, (hw, hh, hd), Part.SKIN, skin)
    b.ellipsoid(head, jaw_c, (jw, jh, jd), Part.SKIN, skin)
    for sx in (-1, 1):
        b.ellipsoid(head, (sx * 0.062, ey - 0.05, z_cheek - cs * 0.78), (cs * 1.1, cs * 0.85, cs), Part.SKIN, skin)
    b.ellipsoid(head, (0.0, my - 0.05, z_chin - chs * 0.8), (chs * 1.15, chs * 0.9, chs), Part.SKIN, skin)
    b.ellipsoid(head, (0.0, ey + 0.028, z_brow - 0.026), (es + 0.04, 0.02, 0.032), Part.SKIN, skin)  # brow ridge

    # --- stage 2: features placed on the surface of the face
    y_tip = ey - ident.nose_length
    brow_pts = [(es - 0.028, ey + 0.030), (es, ey + 0.035), (es + 0.03, ey + 0.030)]
    zs = _surface_z(b.compile(), [(es, ey), (0.0, ey), (0.0, y_tip), (0.0, my + lt), (0.0, my - lt)] + brow_pts)
    z_eye, z_nose_root, z_tip_base, z_up, z_lo = zs[:5]
    zb_in, zb_mid, zb_out = zs[5:]

    # nose: bridge capsule, tip and wings
    z_tip = z_tip_base + ident.nose_protrusion
    b.capsule(head, (0.0, ey + 0.004, z_nose_root - 0.006), (0.0, y_tip + nw * 0.6, z_tip - nw * 0.9),
              0.0075, nw * 0.72, Part.SKIN, skin)
    b.ellipsoid(head, (0.0, y_tip, z_tip - nw), (nw, nw * 0.9, nw), Part.SKIN, skin)
    for sx in (-1, 1):
        b.ellipsoid(head, (sx * nw * 1.0, y_tip - nw * 0.2, z_tip - nw * 1.8), (nw * 0.68, nw * 0.58, nw * 0.7),
                    Part.SKIN, skin)
    nostrils = [torch.tensor([sx * nw * 0.55, y_tip - nw * 0.72, z_tip - nw * 1.15]) for sx in (-1, 1)]

    # ears
    ear_y = ey - 0.012
    for sx in (-1, 1):
        b.ellipsoid(head, (sx * (hw * 0.96 + ident.ear_protrusion), ear_y, -0.03),
                    (0.011, ident.ear_size, ident.ear_size * 0.6), Part.SKIN, skin,
                    rot=_rotation(ax=-0.2, ay=sx * 0.35))

    # neck, and sloping shoulders (clothes); the clip plane cuts everything at Y_CLIP
    nr = ident.neck_radius
    b.capsule(head, (0.0, -0.06 + oy, -0.045), (0.0, -0.36 + oy, -0.055), nr, nr * 1.1, Part.SKIN, skin)
    sw = ident.shoulder_width
    for sx in (-1, 1):
        b.capsule(head, (sx * 0.03, -0.31 + oy, -0.055), (sx * (sw + 0.07), -0.385 + oy, -0.06), 0.1, 0.105,
                  Part.CLOTHES, ident.clothes_rgb)

    # eyes (wide ellipsoidal eyeballs) in carved almond sockets
    eye_centres, eye_radii, socket_centres, socket_radii = [], [], [], []
    for sx in (-1, 1):
        c = (sx * es, ey, z_eye - er * 0.95)
        r = (er * 1.38, er, er)
        b.ellipsoid(hard, c, r, Part.EYES, (0.94, 0.92, 0.89))
        sc = (sx * es, ey + 0.001, c[2] + er * 0.45)
        sr = (er * 1.5, er * 0.92 * ident.eye_openness, er * 1.25)
        b.cutter(head, sc, sr)
        eye_centres.append(c)
        eye_radii.append(r)
        socket_centres.append(sc)
        socket_radii.append(sr)

    # lips
    b.ellipsoid(lips, (0.0, my + lt * 0.95, z_up - 0.011), (mw, lt, 0.016), Part.LIPS, ident.lip_rgb)
    b.ellipsoid(lips, (0.0, my - lt * 1.05, z_lo - 0.011), (mw * 0.86, lt * 1.12, 0.016), Part.LIPS, ident.lip_rgb)

    # brows: two tapered capsules each
    if ident.has_brows:
        bt = ident.brow_thickness
        for sx in (-1, 1):
            p_in = (sx * (es - 0.028), ey + 0.030, zb_in - bt * 0.3)
            p_mid = (sx * es, ey + 0.035 + ident.brow_arch, zb_mid - bt * 0.3)
            p_out = (sx * (es + 0.03), ey + 0.030 + ident.brow_arch * 0.5, zb_out - bt * 0.5)
            b.capsule(hard, p_in, p_mid, bt, bt * 0.95, Part.BROWS, ident.brow_rgb)
            b.capsule(hard, p_mid, p_out, bt * 0.95, bt * 0.5, Part.BROWS, ident.brow_rgb)

    # glasses: two rims, a bridge and temples to the ears
    if ident.has_glasses:
        gr, gt, gcol = ident.glasses_radius, ident.glasses_thickness, ident.glasses_rgb
        zg = z_eye + 0.018
        for sx in (-1, 1):
            b.torus(hard, (sx * es, ey - 0.002, zg), gr, gt, Part.GLASSES, gcol, sx=1.0, sy=1.12)
            b.capsule(hard, (sx * (es + gr), ey + 0.004, zg), (sx * (hw * 0.99 + 0.004), ey + 0.008, -0.02),
                      gt * 0.9, None, Part.GLASSES, gcol)
        b.capsule(hard, (-(es - gr), ey + 0.006, zg + 0.004), (es - gr, ey + 0.006, zg + 0.004), gt * 0.9, None,
                  Part.GLASSES, gcol)

    # hair: a shell over the skull with the face cut out, plus style-specific volumes
    style, th, hcol = ident.hair_style, ident.hair_volume, ident.hair_rgb
    if style != "bald":
        hair = b.group("hair", k=0.02, cut_k=0.012)
        if style == "curly":
            th = th + 0.025
            hair.curl_amp, hair.curl_freq = 0.0065, 75.0
        b.ellipsoid(hair, (0.0, 0.07 + oy + th * 0.35, -0.033), (hw + th, hh + th, hd + th * 0.8 + 0.004),
                    Part.HAIR, hcol)
        hl = ident.hairline + oy + (0.01 if style == "curly" else 0.0)
        b.cutter(hair, (0.0, hl - 0.27, 0.165), (0.126, 0.27, 0.22))  # the face
        if style not in ("long", "bob"):
            # temples and cheeks in front of the ears (short sideburns)
            b.cutter(hair, (0.0, ey - 0.05, 0.1), (0.22, 0.075, 0.1))
        if style in ("short", "bun"):
            hair.planes.append((0.0, -1.0, 0.39, 0.001 - oy))  # nape line: y >= 0.39 z - 0.001 + oy
            for sx in (-1, 1):  # notches around the ears
                b.cutter(hair, (sx * (hw + 0.01), ear_y - 0.005, -0.03), (0.05, ident.ear_size + 0.012, 0.032))
        elif style == "curly":
            hair.planes.append((0.0, -1.0, 0.3, 0.03 - oy))  # y >= 0.3 z - 0.03 + oy
        if style == "bun":
            b.ellipsoid(hair, (0.0, 0.215 + oy, -0.155), (0.068, 0.062, 0.062), Part.HAIR, hcol)
        elif style == "long":
            b.ellipsoid(hair, (0.0, -0.06 + oy, -0.05), (hw + th + 0.016, 0.31, hd * 0.82 + th), Part.HAIR, hcol)
        elif style == "bob":
            b.ellipsoid(hair, (0.0, 0.0 + oy, -0.04), (hw + th + 0.014, 0.22, hd + th), Part.HAIR, hcol)
        elif style == "curly":
            b.ellipsoid(hair, (0.0, 0.0 + oy, -0.06), (hw + th + 0.005, 0.17, hd * 0.9 + th), Part.HAIR, hcol)

    # beard
    if ident.beard_style != "none":
        beard = b.group("beard", k=0.012, cut_k=0.006, curl_amp=0.0015, curl_freq=140.0)
        if ident.beard_style == "full":
            b.ellipsoid(beard, (0.0, jaw_c[1] - 0.008, jaw_c[2] + 0.006), (jw + 0.011, jh + 0.016, jd + 0.012),
                        Part.BEARD, hcol)
            beard.planes.append((0.0, 1.0, 0.0, my + 0.017))  # y <= mouth + 0.017
            beard.planes.append((0.0, 0.0, -1.0, 0.02))  # z >= -0.02
        elif ident.beard_style == "goatee":
            b.ellipsoid(beard, (0.0, my - 0.048, z_chin - 0.008), (mw * 0.8, 0.04, 0.03), Part.BEARD, hcol)
        if ident.beard_style in ("goatee", "moustache"):
            b.ellipsoid(beard, (0.0, my + lt * 2 + 0.004, z_up - 0.006), (mw + 0.006, 0.0075, 0.012), Part.BEARD, hcol)
        b.cutter(beard, (0.0, my - 0.002, z_up), (mw + 0.004, 0.011, 0.05))  # keep the mouth free

    info = dict(
        eye_centres=torch.tensor(eye_centres),
        eye_radii=torch.tensor(eye_radii),
        iris_angle=float(ident.iris_size),
        eye_rgb=torch.tensor(ident.eye_rgb),
        socket_centres=[torch.tensor(c) for c in socket_centres],
        socket_radii=[torch.tensor(r) for r in socket_radii],
        blush_centres=[torch.tensor([sx * 0.07, ey - 0.055, z_cheek + 0.01]) for sx in (-1, 1)],
        nostrils=nostrils,
        nostril_r=nw * 0.42,
        mouth_y=my,
        mouth_line=max(lt * 0.22, 0.0018),
        collar_r=ident.neck_radius + 0.03,
    )
    return b.compile(info)
