"""ID-Inpainter stage 1: the contextual-attention (CA) coarse-to-fine inpainter at 112×112.

A re-implementation, in plain torch, of ``ca_inpainter/model/networks112.py`` of
``icaoyu/ID-Inpainter`` — itself the 112-px variant of the PyTorch port of Yu et al. 2018,
"Generative Image Inpainting with Contextual Attention" (CVPR). Module and parameter names
follow the official ``state_dict`` exactly, so the released ``gen_00700000.pt`` (a plain
state dict, no ``module.`` prefix, 84 entries) loads with ``strict=True``.

Conventions (the official ones):

* images N×3×112×112 in [-1, 1] (``(u8/255 - 0.5) / 0.5``), **the hole already zeroed**
  (``x = image * (1 - mask)``; 0 is mid grey);
* ``mask`` N×1×112×112, 1 = hole;
* outputs clamped to [-1, 1]; pipelines use ``x_stage2`` in the hole and the input elsewhere.

Where this differs from the official code, on purpose:

* **Batches.** The official contextual attention takes the valid-patch mask of sample 0
  for the whole batch (``m = m[0]``), so a batched call computes, for samples 1…, something
  other than running them alone. :class:`ContextualAttention` here uses each sample's own
  mask and is vectorised over the batch (batched matrix products, one grouped transposed
  convolution); ``share_first_mask=True`` restores the official batch behaviour.
* **Devices.** No ``.cuda()`` calls: everything follows the input's device. The attention
  runs in float32 even under autocast (its filter norms are sums of ~1000 squares, which
  overflow float16).
* **offset_flow.** The official returns a Middlebury colour picture of the attention
  offsets (numpy, normalised by a running maximum over the batch, so batch-dependent). Here
  ``offset_flow`` is the raw offset field N×2×h×w (Δrow, Δcol of the best-matching
  background patch, in attention-grid cells; h = w = 32 at 112 px): it is only a
  visualisation aid and is not used by any loss.

Training (:class:`CATrainer`) follows the training code of that PyTorch port
(``daa233/generative-inpainting-pytorch``: ``trainer.py``, ``train.py``,
``configs/config.yaml``): coarse and fine L1 on the hole (spatially discounted) and on the
known region, WGAN-GP with a local critic (:class:`LocalDis`, a 64×64 crop around the hole)
and a global one (:class:`GlobalDis`), Adam β = (0.5, 0.9), five critic updates per
generator update. ID-Inpainter's repository ships the model and ``netD: ndf 32`` but not
its CA training script; see :class:`CALossWeights` for where each number comes from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from inpainters.layers.crops import crop_boxes
from recogbench.checkpoint import CheckpointError, load_into, load_states

if TYPE_CHECKING:
    from recogbench.train import TrainConfig

__all__ = [
    "CHECKPOINT_FORMAT",
    "CALossWeights",
    "CAGenerator",
    "CATrainer",
    "ca_from_state",
    "CoarseGenerator",
    "ContextualAttention",
    "ConvBlock",
    "DisConvModule",
    "FineGenerator",
    "GlobalDis",
    "LocalDis",
    "discount_weights",
    "local_boxes",
]

CHECKPOINT_FORMAT = "recogbench-id-inpainter-ca/1"
SIZE = 112
"""The only input size: the network resizes to 128 inside and back to 112 at the end."""
LOCAL_SIZE = 64
"""Side of the local critic's crop: LocalDis's linear layer expects 4×4 after four stride-2 convs."""


# ---------------------------------------------------------------------------- building blocks


class ConvBlock(nn.Module):
    """``conv`` then an optional activation (the official ``Conv2dBlock`` as ``gen_conv`` /
    ``dis_conv`` use it: zero padding inside the conv, no normalisation, bias on).

    The parameters live in ``self.conv`` so the keys read ``<name>.conv.weight`` /
    ``<name>.conv.bias`` as in the official checkpoint.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, activation: str = "elu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=padding, dilation=dilation, bias=True)
        acts: dict[str, nn.Module | None] = {
            "elu": nn.ELU(), "relu": nn.ReLU(), "lrelu": nn.LeakyReLU(0.2), "none": None,
        }
        if activation not in acts:
            raise ValueError(f"unknown activation {activation!r}")
        self.activation = acts[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.activation(x) if self.activation is not None else x


def _gen(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1, rate: int = 1,
         activation: str = "elu") -> ConvBlock:
    return ConvBlock(cin, cout, kernel, stride, padding, rate, activation)


def _resize_ac(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True`` and no antialiasing, as the official
    ``UpsamplingBilinear2d`` and explicit ``F.interpolate(..., align_corners=True)`` do (also
    for the 128 → 112 *down*sample: a Resize-style port with antialias computes otherwise)."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' zero padding (the extra row/column, if any, goes bottom/right)."""
    def amount(n: int) -> tuple[int, int]:
        out = (n + stride - 1) // stride
        total = max(0, (out - 1) * stride + kernel - n)
        return total // 2, total - total // 2

    top, bottom = amount(x.shape[-2])
    left, right = amount(x.shape[-1])
    return F.pad(x, (left, right, top, bottom))


def _check_input(x: torch.Tensor, mask: torch.Tensor) -> None:
    if x.ndim != 4 or mask.ndim != 4 or x.shape[-2:] != (SIZE, SIZE) or mask.shape[-2:] != (SIZE, SIZE):
        raise ValueError(f"the CA inpainter takes N×C×{SIZE}×{SIZE} images and N×1×{SIZE}×{SIZE} masks, "
                         f"got {tuple(x.shape)} and {tuple(mask.shape)}")
    if mask.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} images but {mask.shape[0]} masks")


# --------------------------------------------------------------------------- contextual attention


class ContextualAttention(nn.Module):
    """Contextual attention (Yu et al. 2018) as the official PyTorch code computes it,
    per sample and vectorised over the batch. No parameters.

    ``forward(f, b, mask) -> (y, offset_flow)``:

    * ``f`` foreground features N×C×H×W (what to fill), ``b`` background N×C×H×W (what to
      copy from; the generator passes the same tensor for both);
    * ``mask`` N×1×H'×W' (1 = hole, any size: resized to the matching grid by legacy
      'nearest') or None (every patch usable);
    * ``y`` N×C×H×W: for each position of ``f``, a softmax-weighted paste of ``2·rate``-px
      patches of ``b``; ``offset_flow`` N×2×(H/rate)×(W/rate) float: Δrow, Δcol (grid
      cells) from each position to its best-matching background patch.

    The computation, per sample: ``f`` and ``b`` are downsampled ×1/``rate`` by legacy
    'nearest' (rows/columns 0, 2, 4…); every 3×3 patch of the downsampled ``b`` is a filter,
    normalised by ``sqrt(Σ (w² + 1e-4))`` (the 1e-4 added per element, as the official);
    the cosine-like scores against ``f``'s patches are fused twice with a ``fuse_k``×``fuse_k``
    identity kernel (along the raster order, then along the transposed raster order — the
    paper's "attention propagation", which favours coherent large patches); patches that
    touch the hole are zeroed before and after ``softmax(score · softmax_scale)``, so they get
    no weight (but, as in the official, still count ``exp(0)`` in the normaliser); finally
    the weights paste the full-resolution ``2·rate``×``2·rate`` patches of ``b`` with a
    stride-``rate`` transposed convolution, divided by 4 (the overlap count at rate 2).
    """

    def __init__(self, ksize: int = 3, stride: int = 1, rate: int = 2, fuse_k: int = 3,
                 softmax_scale: float = 10.0, fuse: bool = True, share_first_mask: bool = False) -> None:
        super().__init__()
        if stride != 1 or rate != 2:
            # The official paste (padding=1, /4) is only right for rate 2, stride 1, which is
            # all the model uses; refuse rather than silently compute something else.
            raise ValueError("only stride=1, rate=2 are supported (the official configuration)")
        self.ksize, self.stride, self.rate = ksize, stride, rate
        self.fuse_k, self.softmax_scale, self.fuse = fuse_k, float(softmax_scale), fuse
        self.share_first_mask = share_first_mask
        """True: sample 0's mask for the whole batch, as the official batched call computes."""

    def extra_repr(self) -> str:
        return (f"ksize={self.ksize}, rate={self.rate}, fuse_k={self.fuse_k}, softmax_scale={self.softmax_scale}, "
                f"fuse={self.fuse}, share_first_mask={self.share_first_mask}")

    def forward(self, f: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        # float32 (or the input's float64) even under autocast: Σ w² over C·k·k ≈ 1000
        # elements overflows float16.
        def full(t: torch.Tensor) -> torch.Tensor:
            return t if t.dtype in (torch.float32, torch.float64) else t.float()

        with torch.autocast(device_type=f.device.type, enabled=False):
            f, b = full(f), full(b)
            return self._attend(f, b.to(f.dtype), None if mask is None else mask.to(f.dtype))

    def _fuse(self, s: torch.Tensor) -> torch.Tensor:
        """s N×L×P → the same, each entry summed with its diagonal neighbours: the official
        'SAME' convolution with a fuse_k×fuse_k identity kernel, written as shifted adds in
        the kernel's order (a 1-channel 1024×1024 convolution is ~10× slower on CPU, and
        its backward ~50×)."""
        k = self.fuse_k
        rows, cols = s.shape[-2:]
        padded = _same_pad(s, k, 1)
        out = padded[..., 0:rows, 0:cols]
        for d in range(1, k):
            out = out + padded[..., d:d + rows, d:d + cols]
        return out

    def _attend(self, f: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = b.shape
        k, r = self.ksize, self.rate
        kr = 2 * r
        # Background patches at full resolution for the paste: N×(C·kr·kr)×L, (c, i, j) order.
        raw = F.unfold(_same_pad(b, kr, r * self.stride), kr, stride=r * self.stride)

        f_s = F.interpolate(f, scale_factor=1.0 / r, mode="nearest")
        b_s = F.interpolate(b, scale_factor=1.0 / r, mode="nearest")
        hf, wf = f_s.shape[-2:]
        hb, wb = b_s.shape[-2:]
        n_b, n_f = hb * wb, hf * wf

        # Matching: every 3×3 patch of b_s is a filter, normalised by sqrt(Σ (w² + 1e-4))
        # (summed over kw, kh, then C, the official order); all samples' filters run as one
        # grouped convolution over f_s (groups = N), so sample i only meets its own patches.
        wpat = F.unfold(_same_pad(b_s, k, self.stride), k, stride=self.stride)      # N×(C·k·k)×Lb
        wpat = wpat.view(n, c, k, k, n_b).permute(0, 4, 1, 2, 3)                    # N×Lb×C×k×k
        norm = torch.sqrt((wpat * wpat + 1e-4).sum(dim=4, keepdim=True).sum(dim=3, keepdim=True)
                          .sum(dim=2, keepdim=True))
        filters = (wpat / norm).reshape(n * n_b, c, k, k)
        f_pad = _same_pad(f_s, k, 1)
        s = F.conv2d(f_pad.reshape(1, n * c, *f_pad.shape[-2:]), filters, groups=n)  # 1×(N·Lb)×hf×wf
        s = s.view(n, n_b, n_f)

        if self.fuse:
            s = self._fuse(s)
            # Second pass along the transposed raster order (columns first), then back.
            s = s.view(n, hb, wb, hf, wf).permute(0, 2, 1, 4, 3).reshape(n, n_b, n_f)
            s = self._fuse(s)
            s = s.view(n, wb, hb, wf, hf).permute(0, 2, 1, 4, 3).reshape(n, n_b, n_f)

        if mask is None:
            valid = torch.ones(n, n_b, 1, device=s.device, dtype=s.dtype)
        else:
            m = F.interpolate(mask, size=(hb, wb), mode="nearest")
            mp = F.unfold(_same_pad(m, k, self.stride), k, stride=self.stride)      # N×(k·k)×Lb
            # A background patch is usable only if no pixel of it is in the hole.
            valid = (mp.mean(dim=1, keepdim=True) == 0).to(s.dtype).transpose(1, 2)  # N×Lb×1
            if self.share_first_mask:
                valid = valid[:1].expand(n, -1, -1)
        s = s * valid
        s = F.softmax(s * self.softmax_scale, dim=1)
        s = s * valid                                                              # N×Lb×Lf

        # Offsets of the best match (argmax over background patches), as a flow field.
        with torch.no_grad():
            best = s.argmax(dim=1)                                                  # N×Lf
            if (hb, wb) != (hf, wf):
                best = ((best + 1).float() * (n_f / n_b) - 1).long()
            rows = torch.arange(hf, device=s.device).view(1, hf, 1)
            cols = torch.arange(wf, device=s.device).view(1, 1, wf)
            best = best.view(n, hf, wf)
            flow = torch.stack([best // wf - rows, best % wf - cols], dim=1).float()

        # Paste: the official conv_transpose2d(scores, raw patches, stride=rate, padding=1) / 4,
        # one group per sample.
        weight = raw.view(n, c, kr, kr, n_b).permute(0, 4, 1, 2, 3).reshape(n * n_b, c, kr, kr)
        y = F.conv_transpose2d(s.reshape(1, n * n_b, hf, wf), weight, stride=r, padding=1, groups=n) / 4.0
        return y.view(n, c, y.shape[-2], y.shape[-1]), flow


# ------------------------------------------------------------------------------- generators


class CoarseGenerator(nn.Module):
    """Stage 1: ``forward(x, mask)`` → coarse prediction N×3×112×112 in [-1, 1].

    112 → 56 (stride 2) → bilinear 128 → 64 (stride 2); at 64: two convs, four dilated ones
    (rates 2, 4, 8, 16), two more; ×2 'nearest' → 128; two convs; bilinear → 112; three
    convs, the last linear; clamp. ELU everywhere else.
    """

    def __init__(self, input_dim: int = 3, cnum: int = 32) -> None:
        super().__init__()
        self.conv1 = _gen(input_dim + 2, cnum, 5, 1, 2)
        self.conv2_downsample = _gen(cnum, cnum * 2, 3, 2, 1)
        self.conv3 = _gen(cnum * 2, cnum * 2)
        self.conv4_downsample = _gen(cnum * 2, cnum * 4, 3, 2, 1)
        self.conv5 = _gen(cnum * 4, cnum * 4)
        self.conv6 = _gen(cnum * 4, cnum * 4)
        self.conv7_atrous = _gen(cnum * 4, cnum * 4, 3, 1, 2, rate=2)
        self.conv8_atrous = _gen(cnum * 4, cnum * 4, 3, 1, 4, rate=4)
        self.conv9_atrous = _gen(cnum * 4, cnum * 4, 3, 1, 8, rate=8)
        self.conv10_atrous = _gen(cnum * 4, cnum * 4, 3, 1, 16, rate=16)
        self.conv11 = _gen(cnum * 4, cnum * 4)
        self.conv12 = _gen(cnum * 4, cnum * 4)
        self.conv13 = _gen(cnum * 4, cnum * 2)
        self.conv14 = _gen(cnum * 2, cnum * 2)
        self.conv15 = _gen(cnum * 2, cnum)
        self.conv16 = _gen(cnum, cnum // 2)
        self.conv17 = _gen(cnum // 2, input_dim, activation="none")

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # The constant-ones channel lets the convs tell the image border (zero padding) from content.
        ones = torch.ones_like(mask)
        x = self.conv1(torch.cat([x, ones, mask], dim=1))
        x = _resize_ac(self.conv2_downsample(x), 128)
        x = self.conv4_downsample(self.conv3(x))
        for name in ("conv5", "conv6", "conv7_atrous", "conv8_atrous", "conv9_atrous", "conv10_atrous",
                     "conv11", "conv12"):
            x = getattr(self, name)(x)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = _resize_ac(self.conv14(self.conv13(x)), SIZE)
        x = self.conv17(self.conv16(self.conv15(x)))
        return torch.clamp(x, -1.0, 1.0)


class FineGenerator(nn.Module):
    """Stage 2: ``forward(xin, x_stage1, mask)`` → ``(x_stage2, offset_flow)``.

    The input is ``x_stage1`` in the hole and ``xin`` elsewhere. Two branches from it: a
    dilated-conv "hallucination" branch (``conv*``) and an attention branch (``pmconv*``:
    down to 64, ReLU before :class:`ContextualAttention`, two convs after); concatenated and
    decoded (``allconv*``) like stage 1. The attention branch reuses the stage's parameterless
    128-px bilinear upsample, as the official does.
    """

    def __init__(self, input_dim: int = 3, cnum: int = 32) -> None:
        super().__init__()
        self.conv1 = _gen(input_dim + 2, cnum, 5, 1, 2)
        self.conv2_downsample = _gen(cnum, cnum, 3, 2, 1)
        self.conv3 = _gen(cnum, cnum * 2)
        self.conv4_downsample = _gen(cnum * 2, cnum * 2, 3, 2, 1)
        self.conv5 = _gen(cnum * 2, cnum * 4)
        self.conv6 = _gen(cnum * 4, cnum * 4)
        self.conv7_atrous = _gen(cnum * 4, cnum * 4, 3, 1, 2, rate=2)
        self.conv8_atrous = _gen(cnum * 4, cnum * 4, 3, 1, 4, rate=4)
        self.conv9_atrous = _gen(cnum * 4, cnum * 4, 3, 1, 8, rate=8)
        self.conv10_atrous = _gen(cnum * 4, cnum * 4, 3, 1, 16, rate=16)
        self.pmconv1 = _gen(input_dim + 2, cnum, 5, 1, 2)
        self.pmconv2_downsample = _gen(cnum, cnum, 3, 2, 1)
        self.pmconv3 = _gen(cnum, cnum * 2)
        self.pmconv4_downsample = _gen(cnum * 2, cnum * 4, 3, 2, 1)
        self.pmconv5 = _gen(cnum * 4, cnum * 4)
        self.pmconv6 = _gen(cnum * 4, cnum * 4, activation="relu")
        # Official spelling ("contextul"): keeps the module tree (and hook names) identical.
        self.contextul_attention = ContextualAttention(ksize=3, stride=1, rate=2, fuse_k=3, softmax_scale=10, fuse=True)
        self.pmconv9 = _gen(cnum * 4, cnum * 4)
        self.pmconv10 = _gen(cnum * 4, cnum * 4)
        self.allconv11 = _gen(cnum * 8, cnum * 4)
        self.allconv12 = _gen(cnum * 4, cnum * 4)
        self.allconv13 = _gen(cnum * 4, cnum * 2)
        self.allconv14 = _gen(cnum * 2, cnum * 2)
        self.allconv15 = _gen(cnum * 2, cnum)
        self.allconv16 = _gen(cnum, cnum // 2)
        self.allconv17 = _gen(cnum // 2, input_dim, activation="none")

    @property
    def contextual_attention(self) -> ContextualAttention:
        """Correctly spelt alias of :attr:`contextul_attention`."""
        return self.contextul_attention

    def forward(self, xin: torch.Tensor, x_stage1: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        xnow = x_stage1 * mask + xin * (1.0 - mask)
        xnow = torch.cat([xnow, torch.ones_like(mask), mask], dim=1)
        x = _resize_ac(self.conv2_downsample(self.conv1(xnow)), 128)
        x = self.conv4_downsample(self.conv3(x))
        for name in ("conv5", "conv6", "conv7_atrous", "conv8_atrous", "conv9_atrous", "conv10_atrous"):
            x = getattr(self, name)(x)
        x_hallu = x
        x = _resize_ac(self.pmconv2_downsample(self.pmconv1(xnow)), 128)
        x = self.pmconv6(self.pmconv5(self.pmconv4_downsample(self.pmconv3(x))))
        x, offset_flow = self.contextul_attention(x, x, mask)
        pm = self.pmconv10(self.pmconv9(x))
        x = self.allconv12(self.allconv11(torch.cat([x_hallu, pm.to(x_hallu.dtype)], dim=1)))
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = _resize_ac(self.allconv13(x), SIZE)
        x = self.allconv17(self.allconv16(self.allconv15(self.allconv14(x))))
        return torch.clamp(x, -1.0, 1.0), offset_flow


class CAGenerator(nn.Module):
    """The two-stage CA generator (official ``Generator``; ``config['netG'] = {input_dim: 3, ngf: 32}``).

    ``forward(x, mask) -> (x_stage1, x_stage2, offset_flow)``:

    * ``x`` N×3×112×112 in [-1, 1] with the hole zeroed (``image * (1 - mask)``; the
      network is trained that way and reads the hole pixels as content);
    * ``mask`` N×1×112×112, 1 = hole (float; {0, 1});
    * ``x_stage1``, ``x_stage2`` N×3×112×112 in [-1, 1] (coarse and fine; pipelines paste
      ``x_stage2`` into the hole), ``offset_flow`` N×2×32×32 (see :class:`ContextualAttention`).

    Each sample's result does not depend on the rest of the batch (unlike the official code;
    see the module docstring). Keys equal the official checkpoint's (``ngf=32``: 84 entries,
    3,601,542 parameters).
    """

    def __init__(self, input_dim: int = 3, ngf: int = 32) -> None:
        super().__init__()
        if ngf < 2 or ngf % 2:
            raise ValueError(f"ngf must be an even number ≥ 2, got {ngf}")
        self.input_dim, self.ngf = input_dim, ngf
        self.coarse_generator = CoarseGenerator(input_dim, ngf)
        self.fine_generator = FineGenerator(input_dim, ngf)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_input(x, mask)
        mask = mask.to(x.dtype)
        x_stage1 = self.coarse_generator(x, mask)
        x_stage2, offset_flow = self.fine_generator(x, x_stage1, mask)
        return x_stage1, x_stage2, offset_flow


# --------------------------------------------------------------------------- discriminators


class DisConvModule(nn.Module):
    """Four 5×5 stride-2 convs with LeakyReLU(0.2): ``cnum``, 2·, 4·, 4· channels; ÷16 in size."""

    def __init__(self, input_dim: int = 3, cnum: int = 32) -> None:
        super().__init__()
        self.conv1 = ConvBlock(input_dim, cnum, 5, 2, 2, activation="lrelu")
        self.conv2 = ConvBlock(cnum, cnum * 2, 5, 2, 2, activation="lrelu")
        self.conv3 = ConvBlock(cnum * 2, cnum * 4, 5, 2, 2, activation="lrelu")
        self.conv4 = ConvBlock(cnum * 4, cnum * 4, 5, 2, 2, activation="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv4(self.conv3(self.conv2(self.conv1(x))))


class LocalDis(nn.Module):
    """WGAN critic of the hole's neighbourhood: N×3×64×64 in [-1, 1] → N×1 (unbounded score).

    Official ``LocalDis`` of networks112.py (``Linear(ndf·4·4·4, 1)``, hence 64×64 crops)."""

    def __init__(self, input_dim: int = 3, ndf: int = 32) -> None:
        super().__init__()
        self.dis_conv_module = DisConvModule(input_dim, ndf)
        self.linear = nn.Linear(ndf * 4 * 4 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dis_conv_module(x).flatten(1))


class GlobalDis(nn.Module):
    """WGAN critic of the whole face: N×3×H×W in [-1, 1] (112 here) → N×1.

    Official ``GlobalDis`` of networks112.py: bilinear (align_corners=True) to 128 first,
    then ``Linear(ndf·4·8·8, 1)``."""

    def __init__(self, input_dim: int = 3, ndf: int = 32) -> None:
        super().__init__()
        self.dis_conv_module = DisConvModule(input_dim, ndf)
        self.linear = nn.Linear(ndf * 4 * 8 * 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dis_conv_module(_resize_ac(x, 128)).flatten(1))


# ----------------------------------------------------------------------------------- losses


@dataclass(frozen=True)
class CALossWeights:
    """Loss weights and critic settings of :class:`CATrainer`.

    All from ``configs/config.yaml`` of ``daa233/generative-inpainting-pytorch``, the code
    ID-Inpainter's CA inpainter derives from (its repository has no CA training config):
    ``coarse_l1_alpha`` 1.2 (weight of the stage-1 terms inside ``l1`` and ``ae``),
    ``l1_loss_alpha`` 1.2, ``ae_loss_alpha`` 1.2, ``global_wgan_loss_alpha`` 1,
    ``gan_loss_alpha`` 0.001, ``wgan_gp_lambda`` 10, ``n_critic`` 5,
    ``spatial_discounting_gamma`` 0.9, Adam ``beta1`` 0.5, ``beta2`` 0.9 (its ``lr`` 1e-4
    is :class:`~recogbench.train.TrainConfig`'s ``lr`` here).
    """

    coarse_l1_alpha: float = 1.2
    l1_loss_alpha: float = 1.2
    ae_loss_alpha: float = 1.2
    global_wgan_loss_alpha: float = 1.0
    gan_loss_alpha: float = 0.001
    wgan_gp_lambda: float = 10.0
    n_critic: int = 5
    spatial_discounting_gamma: float = 0.9
    beta1: float = 0.5
    beta2: float = 0.9

    def __post_init__(self) -> None:
        if self.n_critic < 1 or not 0 < self.spatial_discounting_gamma <= 1:
            raise ValueError(f"invalid CA loss settings {self}")


def discount_weights(hole: torch.Tensor, gamma: float = 0.9, max_distance: int | None = None) -> torch.Tensor:
    """Spatial discounting (Yu et al. 2018 §3.1) for holes of any shape: N×1×H×W weights,
    ``gamma ** d`` in the hole and 0 outside, ``d`` the chessboard distance to the nearest
    known pixel minus 1 (0 on the hole's rim; pixels beyond the image do not count as known).

    For a rectangular hole this is the official ``max(γ^min(i, h-i), γ^min(j, w-j))`` up to
    its off-by-one at the bottom/right rims (the official gives γ¹ there, γ⁰ at top/left).
    Computed by repeated 3×3 erosion (max-pooling of the known region), so it runs on the
    hole's device; ``max_distance`` caps the iterations (default: half the larger side).
    """
    inside = (hole > 0.5).to(torch.float32)
    steps = max_distance if max_distance is not None else (max(hole.shape[-2:]) + 1) // 2
    weights = inside.clone()
    eroded = inside
    for d in range(1, steps + 1):
        # -max_pool(-x) is a min-pool; its -inf padding makes out-of-image pixels "hole",
        # so the image border does not count as known context.
        eroded = -F.max_pool2d(-eroded, 3, stride=1, padding=1)
        if not bool(eroded.any()):
            break
        weights = torch.where(eroded > 0, torch.full_like(weights, gamma ** d), weights)
    return weights.to(hole.dtype)


def local_boxes(hole: torch.Tensor, side: int = LOCAL_SIZE) -> torch.Tensor:
    """Square crops for the local critic, N×4 float (x1, y1, x2, y2), integer pixels: ``side``
    px (or the hole's larger bounding-box side when bigger, at most the image) centred on the
    hole's bounding box and shifted inside the image. An empty hole gives the centre crop.

    The official samples a rectangular hole and crops its bounding box; arbitrary occluders
    need a box around each hole (larger boxes are resized to ``side`` by the caller).
    """
    n, _, h, w = hole.shape
    m = hole[:, 0] > 0.5
    rows, cols = m.any(dim=2), m.any(dim=1)                                      # N×H, N×W
    ar_h = torch.arange(h, device=hole.device)
    ar_w = torch.arange(w, device=hole.device)
    big = torch.tensor(1 << 30, device=hole.device)
    y1 = torch.where(rows, ar_h, big).amin(1)
    y2 = torch.where(rows, ar_h, -1).amax(1) + 1
    x1 = torch.where(cols, ar_w, big).amin(1)
    x2 = torch.where(cols, ar_w, -1).amax(1) + 1
    empty = ~rows.any(1)
    y1, y2 = torch.where(empty, h // 2, y1), torch.where(empty, h // 2, y2)
    x1, x2 = torch.where(empty, w // 2, x1), torch.where(empty, w // 2, x2)
    s = torch.clamp(torch.maximum(torch.maximum(y2 - y1, x2 - x1), torch.tensor(side, device=hole.device)),
                    max=min(h, w))
    # Centre with integer arithmetic: floor((a + b - s) / 2), then shift inside the image.
    bx = torch.minimum(torch.clamp(torch.div(x1 + x2 - s, 2, rounding_mode="floor"), min=0), w - s)
    by = torch.minimum(torch.clamp(torch.div(y1 + y2 - s, 2, rounding_mode="floor"), min=0), h - s)
    return torch.stack([bx, by, bx + s, by + s], dim=1).float()


def ca_from_state(state: dict[str, torch.Tensor], origin: str | Path) -> "CAGenerator":
    """A :class:`CAGenerator` as wide as ``state`` (``ngf`` from its first convolution; the
    released ``gen_00700000.pt`` has 32) with ``state`` loaded strictly."""
    first = state.get("coarse_generator.conv1.conv.weight")
    if first is None or first.ndim != 4:
        raise CheckpointError(f"{origin}: not an ID-Inpainter CA generator state dict "
                              "(no coarse_generator.conv1.conv.weight)")
    model = CAGenerator(ngf=int(first.shape[0]))
    load_into(model, state, origin)
    return model


# ---------------------------------------------------------------------------------- trainer


class CATrainer:
    """Trains :class:`CAGenerator` with a local and a global WGAN-GP critic, one
    :meth:`step` per batch, for :func:`recogbench.train.train`.

    ``CATrainer(config, device, *, weights=CALossWeights())``: uses ``config.seed``
    (initialisation), ``config.lr`` (Adam, generator and critics; the reference uses 1e-4),
    ``config.base_channels`` (``ngf`` = ``ndf``; ID-Inpainter uses 32 for both),
    ``config.amp`` (float16 autocast, CUDA only) and ``config.size`` (must be 112).

    Every step updates the critics once; every ``n_critic``-th step (the 5th, 10th, …)
    also updates the generator, as the reference does. Each step reports every loss term:
    on critic-only steps the generator terms are measured (against the critics before their
    update, as the reference logs them) but not optimised.

    Images N×3×112×112 float in [0, 1], holes N×1×112×112 (1 = hole); inside, images map to
    [-1, 1] and the hole is zeroed, as the official pipeline feeds the network.
    """

    loss_names: tuple[str, ...] = ("wgan_d", "wgan_gp", "d", "l1", "ae", "wgan_g", "g")

    def __init__(self, config: "TrainConfig", device: torch.device, *, weights: CALossWeights = CALossWeights()) -> None:
        if config.size != SIZE:
            raise ValueError(f"the CA inpainter works at {SIZE}×{SIZE} only (the network resizes to 128 and back "
                             f"to 112 inside); got size={config.size}")
        self.device = torch.device(device)
        self.weights = weights
        self.ngf = self.ndf = int(config.base_channels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.generator = CAGenerator(3, self.ngf)
            self.local_dis = LocalDis(3, self.ndf)
            self.global_dis = GlobalDis(3, self.ndf)
        for module in (self.generator, self.local_dis, self.global_dis):
            module.to(self.device)
        betas = (weights.beta1, weights.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam([*self.local_dis.parameters(), *self.global_dis.parameters()],
                                      lr=config.lr, betas=betas)
        self.amp = bool(config.amp) and self.device.type == "cuda"
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.iteration = 0
        """Steps taken (saved with the optimiser state): the generator learns when it is a multiple of n_critic."""

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    @staticmethod
    def _inputs(occluded: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[0, 1] images and holes → the network's input: [-1, 1] with the hole zeroed, and the mask."""
        mask = hole.float()
        return (occluded.float() * 2.0 - 1.0) * (1.0 - mask), mask

    def _gradient_penalty(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """WGAN-GP (Gulrajani et al. 2017): E[(‖∇ D(αx + (1-α)x̃)‖₂ - 1)²], α ~ U(0, 1) per sample.
        In float32 outside autocast: second-order gradients and loss scaling do not mix well."""
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        with torch.autocast(device_type=self.device.type, enabled=False):
            score = critic(mixed)
        grad, = torch.autograd.grad(score.sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()

    def _critics(self, real_local: torch.Tensor, fake_local: torch.Tensor, real: torch.Tensor, fake: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(local real, local fake, global real, global fake) scores, float32; real and fake in one call each."""
        n = real.shape[0]
        with self._autocast():
            lr_, lf = self.local_dis(torch.cat([real_local, fake_local])).float().split(n)
            gr, gf = self.global_dis(torch.cat([real, fake])).float().split(n)
        return lr_, lf, gr, gf

    def step(self, clean: torch.Tensor, occluded: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
        """One critic update, plus a generator update every ``n_critic``-th call.

        Losses (names as the reference logs them): ``wgan_d`` = E[D(fake)] − E[D(real)]
        (local + ``global_wgan_loss_alpha``·global), ``wgan_gp`` (local + global),
        ``d`` = wgan_d + ``wgan_gp_lambda``·wgan_gp; ``l1`` = ``coarse_l1_alpha``·L1ₛ(x₁) + L1ₛ(x₂)
        on the hole, spatially discounted, normalised per 64×64 local patch; ``ae`` = the same
        weighting of plain L1 on the known region (mean over all pixels); ``wgan_g`` =
        −E[D_local(fake)] − ``global_wgan_loss_alpha``·E[D_global(fake)]; ``g`` =
        ``l1_loss_alpha``·l1 + ``ae_loss_alpha``·ae + ``gan_loss_alpha``·wgan_g.
        """
        w = self.weights
        self.iteration += 1
        update_g = self.iteration % w.n_critic == 0
        gt = clean.float() * 2.0 - 1.0
        x, mask = self._inputs(occluded, hole)
        for module in (self.generator, self.local_dis, self.global_dis):
            module.train()

        with torch.set_grad_enabled(update_g), self._autocast():
            x1, x2, _ = self.generator(x, mask)
        x1, x2 = x1.float(), x2.float()
        x1_inpaint = x1 * mask + gt * (1.0 - mask)
        x2_inpaint = x2 * mask + gt * (1.0 - mask)
        boxes = local_boxes(mask)
        real_local = crop_boxes(gt, boxes, LOCAL_SIZE)
        fake_local = crop_boxes(x2_inpaint, boxes, LOCAL_SIZE)

        # ---- critics (WGAN-GP)
        critics = [self.local_dis, self.global_dis]
        for critic in critics:
            critic.requires_grad_(True)
        lr_, lf, gr, gf = self._critics(real_local, fake_local.detach(), gt, x2_inpaint.detach())
        wgan_d = (lf - lr_).mean() + (gf - gr).mean() * w.global_wgan_loss_alpha
        wgan_gp = (self._gradient_penalty(self.local_dis, real_local, fake_local.detach())
                   + self._gradient_penalty(self.global_dis, gt, x2_inpaint.detach()))
        d_loss = wgan_d + wgan_gp * w.wgan_gp_lambda
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(d_loss).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        # ---- generator terms
        sd = discount_weights(mask, w.spatial_discounting_gamma)
        per_patch = x.shape[0] * x.shape[1] * LOCAL_SIZE * LOCAL_SIZE
        l1 = (((x1_inpaint - gt).abs() * sd).sum() * w.coarse_l1_alpha + ((x2_inpaint - gt).abs() * sd).sum()) / per_patch
        known = 1.0 - mask
        ae = ((x1 - gt).abs() * known).mean() * w.coarse_l1_alpha + ((x2 - gt).abs() * known).mean()
        if update_g:
            # The reference backpropagates wgan_g through critics its optimiser has just
            # changed in place (an error in current torch); score with the updated critics.
            for critic in critics:
                critic.requires_grad_(False)
            with self._autocast():
                lf_g = self.local_dis(fake_local).float()
                gf_g = self.global_dis(x2_inpaint).float()
            wgan_g = -lf_g.mean() - gf_g.mean() * w.global_wgan_loss_alpha
            g_loss = l1 * w.l1_loss_alpha + ae * w.ae_loss_alpha + wgan_g * w.gan_loss_alpha
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(g_loss).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
            for critic in critics:
                critic.requires_grad_(True)
        else:
            wgan_g = -lf.mean() - gf.mean() * w.global_wgan_loss_alpha
            g_loss = l1 * w.l1_loss_alpha + ae * w.ae_loss_alpha + wgan_g * w.gan_loss_alpha

        values = {"wgan_d": wgan_d, "wgan_gp": wgan_gp, "d": d_loss, "l1": l1, "ae": ae, "wgan_g": wgan_g, "g": g_loss}
        return {k: float(v.detach()) for k, v in values.items()}

    @torch.no_grad()
    def restore(self, occluded: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Eval-mode fine-stage prediction N×3×112×112 in [0, 1] (``(x_stage2 + 1) / 2``),
        float32, for images in [0, 1] and holes (1 = hole), as inference computes it."""
        self.generator.eval()
        x, mask = self._inputs(occluded, hole)
        _, x2, _ = self.generator(x, mask)   # float32, no autocast: as inference runs
        return x2.float() * 0.5 + 0.5

    # -- state for checkpoints -------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """Checkpoint metadata: format, architecture (``input_dim``, ``ngf``), size, critics, losses."""
        return {
            "format": CHECKPOINT_FORMAT,
            "architecture": {"input_dim": 3, "ngf": self.ngf},
            "size": SIZE,
            "discriminators": {"ndf": self.ndf, "local_size": LOCAL_SIZE},
            "perceptual": "none (the CA losses have no perceptual term)",
            "loss_weights": asdict(self.weights),
            "input_range": "[-1, 1], hole zeroed; mask 1 = hole",
        }

    def generator_state(self) -> dict[str, torch.Tensor]:
        """The generator's state dict: the official key names (``gen_*.pt`` layout)."""
        return self.generator.state_dict()

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        """``localD.*`` and ``globalD.*`` (the reference's ``dis_*.pt`` dictionary keys as prefixes)."""
        return {**{f"localD.{k}": v for k, v in self.local_dis.state_dict().items()},
                **{f"globalD.{k}": v for k, v in self.global_dis.state_dict().items()}}

    def optimizer_state(self) -> dict[str, Any]:
        return {"gen": self.opt_g.state_dict(), "dis": self.opt_d.state_dict(),
                "scaler_gen": self.scaler_g.state_dict(), "scaler_dis": self.scaler_d.state_dict(),
                "iteration": self.iteration}

    def load_state(self, generator: dict[str, torch.Tensor], discriminators: dict[str, torch.Tensor],
                   optimizers: dict[str, Any], origin: str) -> None:
        """Restore what the three state methods returned; CheckpointError naming what does not fit."""
        load_into(self.generator, generator, origin)
        for prefix, module in (("localD.", self.local_dis), ("globalD.", self.global_dis)):
            load_into(module, {k[len(prefix):]: v for k, v in discriminators.items() if k.startswith(prefix)}, origin)
        load_states({"gen": self.opt_g, "dis": self.opt_d, "scaler_gen": self.scaler_g, "scaler_dis": self.scaler_d},
                    optimizers, origin)
        try:
            self.iteration = int(optimizers["iteration"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{origin}: optimizer state has no valid iteration ({exc})") from exc
