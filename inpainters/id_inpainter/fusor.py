"""ID-Inpainter stage 2, the "Fusor": attribute encoder E, identity-guided generator G,
multi-scale discriminator D and the frozen identity Sampler Z.

Rebuilt from the official ``fusor_net.py`` and ``model/networks.py`` (``icaoyu/ID-Inpainter``)
with their parameter names, so that ``Fusor().state_dict()`` has exactly the keys, shapes and
order of the released Lightning checkpoint's ``state_dict`` (``G.``, ``E.``, ``D.``, ``Z.``).

Inference (``prepare_inpainted_datasets.py``, ``ca_id_fill``)::

    z_id   = F.normalize(Z(source))          # source: the black-filled occluded face
    output = G(z_id, E(composite))           # composite: stage 1 (CA) output in the hole

All images N×3×112×112 in [-1, 1]; G ends in tanh. Details that matter numerically:

* every bilinear resize is ``align_corners=True`` (the official ``UpsamplingBilinear2d``):
  E resizes its 112-px input to 128 first, its last attribute map 64 → 112, and G doubles
  after blocks 0-4 and resizes 64 → 112 before block 6;
* E uses LeakyReLU(0.1); the discriminator LeakyReLU(0.2);
* AIF mixes ``(1 - m)·A + m·I`` with ``A = conv1(z_att)·BN(h) + conv2(z_att)`` and
  ``I = fc_1(z_id)·BN(h) + fc_2(z_id)``: no ``1 +`` on the gammas (unlike FaceShifter's AAD);
* BatchNorm eps 1e-5 everywhere.

``width`` (32 in the official model: E's first layer) scales E, G and D together for cheap
experiments and tests; the default reproduces the official keys and shapes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .sampler import Sampler

__all__ = [
    "FUSOR_CHECKPOINT_FORMAT", "AIF", "AIFBlock", "AttributesEncoder", "Discriminator", "Fusor", "Generator", "fusor_from_state",
    "attribute_loss", "hinge_d_loss", "hinge_g_loss", "identity_loss", "reconstruction_loss",
]

FUSOR_CHECKPOINT_FORMAT = "recogbench-id-inpainter-fusor-v1"


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """``nn.UpsamplingBilinear2d(size=(size, size))``: bilinear, align_corners=True."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)


def _double(x: torch.Tensor) -> torch.Tensor:
    """``nn.UpsamplingBilinear2d(scale_factor=2)``."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


class _Resize(nn.Module):
    """Parameter-free stand-in for the official ``UpsamplingBilinear2d(size=...)`` at
    position 0 of ``E.Encoder.layer_0`` (keeps the ``.1``/``.2`` key indices)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _resize(x, self.size)


class AttributesEncoder(nn.Module):
    """E: a U-Net that returns the seven attribute maps ``z_att`` of a 112-px image:
    16w@2, 32w@4, 16w@8, 8w@16, 4w@32, 2w@64, 2w@112 (w = ``width``, 32 officially:
    512@2, 1024@4, 512@8, 256@16, 128@32, 64@64, 64@112)."""

    def __init__(self, *, width: int = 32) -> None:
        super().__init__()
        w = width
        enc = [3, w, 2 * w, 4 * w, 8 * w, 16 * w, 16 * w]
        self.Encoder = nn.ModuleDict()
        self.Encoder.add_module("layer_0", nn.Sequential(
            _Resize(128), nn.Conv2d(enc[0], enc[1], 4, 2, 1), nn.BatchNorm2d(enc[1]), nn.LeakyReLU(0.1)))
        for i in range(1, 6):
            self.Encoder.add_module(f"layer_{i}", nn.Sequential(
                nn.Conv2d(enc[i], enc[i + 1], 4, 2, 1), nn.BatchNorm2d(enc[i + 1]), nn.LeakyReLU(0.1)))
        dec_in = [16 * w, 32 * w, 16 * w, 8 * w, 4 * w]
        dec_out = [16 * w, 8 * w, 4 * w, 2 * w, w]
        self.Decoder = nn.ModuleDict({f"layer_{i}": nn.Sequential(
            nn.ConvTranspose2d(dec_in[i], dec_out[i], 4, 2, 1), nn.BatchNorm2d(dec_out[i]), nn.LeakyReLU(0.1))
            for i in range(5)})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for i in range(6):
            x = self.Encoder[f"layer_{i}"](x)
            skips.append(x)
        y = skips[5]
        z_att = [y]
        for i in range(5):
            y = torch.cat((self.Decoder[f"layer_{i}"](y), skips[4 - i]), 1)
            z_att.append(y)
        z_att.append(_resize(y, 112))
        return z_att


class AIF(nn.Module):
    """Adaptive identity/attribute fusion (the AAD layer of FaceShifter, official variant)."""

    def __init__(self, h_inchannel: int, z_inchannel: int, z_id_size: int = 256) -> None:
        super().__init__()
        self.BNorm = nn.BatchNorm2d(h_inchannel)
        self.conv_f = nn.Conv2d(h_inchannel, h_inchannel, 3, 1, 1)
        self.fc_1 = nn.Linear(z_id_size, h_inchannel)
        self.fc_2 = nn.Linear(z_id_size, h_inchannel)
        self.conv1 = nn.Conv2d(z_inchannel, h_inchannel, 3, 1, 1)
        self.conv2 = nn.Conv2d(z_inchannel, h_inchannel, 3, 1, 1)

    def forward(self, h_in: torch.Tensor, z_att: torch.Tensor, z_id: torch.Tensor) -> torch.Tensor:
        h_bar = self.BNorm(h_in)
        m = torch.sigmoid(self.conv_f(h_bar))
        gamma_id = self.fc_1(z_id)[:, :, None, None]
        beta_id = self.fc_2(z_id)[:, :, None, None]
        i = gamma_id * h_bar + beta_id
        a = self.conv1(z_att) * h_bar + self.conv2(z_att)
        return (1 - m) * a + m * i


class AIFBlock(nn.Module):
    """Two AIF → ReLU → conv3×3 stages; a third AIF → ReLU → conv3×3 shortcut where the
    width changes, else the identity."""

    def __init__(self, h_inchannel: int, z_inchannel: int, h_outchannel: int, z_id_size: int = 256) -> None:
        super().__init__()
        self.h_inchannel, self.z_inchannel, self.h_outchannel = h_inchannel, z_inchannel, h_outchannel
        self.add1 = AIF(h_inchannel, z_inchannel, z_id_size)
        self.add2 = AIF(h_inchannel, z_inchannel, z_id_size)
        self.conv1 = nn.Conv2d(h_inchannel, h_inchannel, 3, 1, 1)
        self.conv2 = nn.Conv2d(h_inchannel, h_outchannel, 3, 1, 1)
        if h_inchannel != h_outchannel:
            self.add3 = AIF(h_inchannel, z_inchannel, z_id_size)
            self.conv3 = nn.Conv2d(h_inchannel, h_outchannel, 3, 1, 1)

    def forward(self, h_in: torch.Tensor, z_att: torch.Tensor, z_id: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(F.relu(self.add1(h_in, z_att, z_id)))
        x1 = self.conv2(F.relu(self.add2(x1, z_att, z_id)))
        x2 = h_in
        if self.h_inchannel != self.h_outchannel:
            x2 = self.conv3(F.relu(self.add3(h_in, z_att, z_id)))
        return x1 + x2


class Generator(nn.Module):
    """G: ``forward(z_id, z_att)`` → N×3×112×112 in (-1, 1) (tanh).

    ``z_id`` N×c_id (unit vectors at inference), ``z_att`` the seven maps of
    :class:`AttributesEncoder`. ``convt`` turns z_id (as a 1×1 map) into 16w@2; AIF blocks
    at 2, 4, 8, 16, 32 and 64 px, each followed by a ×2 upsample (the one after block 5 is
    the 64 → 112 resize), then block 6 and tanh.
    """

    def __init__(self, c_id: int = 256, *, width: int = 32) -> None:
        super().__init__()
        w = width
        self.c_id = c_id
        self.convt = nn.ConvTranspose2d(c_id, 16 * w, kernel_size=2, stride=1, padding=0)
        h_in = [16 * w, 16 * w, 16 * w, 16 * w, 8 * w, 4 * w, 2 * w]
        z_in = [16 * w, 32 * w, 16 * w, 8 * w, 4 * w, 2 * w, 2 * w]
        h_out = [16 * w, 16 * w, 16 * w, 8 * w, 4 * w, 2 * w, 3]
        self.model = nn.ModuleDict({f"layer_{i}": AIFBlock(h_in[i], z_in[i], h_out[i], c_id) for i in range(7)})

    def forward(self, z_id: torch.Tensor, z_att: list[torch.Tensor]) -> torch.Tensor:
        x = self.convt(z_id[:, :, None, None])
        for i in range(5):
            x = _double(self.model[f"layer_{i}"](x, z_att[i], z_id))
        x = _resize(self.model["layer_5"](x, z_att[5], z_id), 112)
        x = self.model["layer_6"](x, z_att[6], z_id)
        return torch.tanh(x)


def _patch_discriminator(input_nc: int, ndf: int, n_layers: int) -> nn.Sequential:
    """pix2pixHD's ``NLayerDiscriminator(...).model`` with BatchNorm (k4, pad 2)."""
    layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True)]
    nf = ndf
    for _ in range(1, n_layers):
        prev, nf = nf, min(nf * 2, 512)
        layers += [nn.Conv2d(prev, nf, 4, 2, 2), nn.BatchNorm2d(nf), nn.LeakyReLU(0.2, True)]
    prev, nf = nf, min(nf * 2, 512)
    layers += [nn.Conv2d(prev, nf, 4, 1, 2), nn.BatchNorm2d(nf), nn.LeakyReLU(0.2, True), nn.Conv2d(nf, 1, 4, 1, 2)]
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """D: pix2pixHD's multi-scale PatchGAN (``num_D`` = 3 scales, ``layer0``–``layer2``).

    ``forward(x)`` returns one N×1×h×w logit map per scale, finest first: ``layer{num_D-1}``
    on ``x``, then the next on ``x`` average-pooled (3×3, stride 2, pad 1, padding not
    counted), and so on (the official returns each map wrapped in a one-element list).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, num_D: int = 3) -> None:
        super().__init__()
        self.num_D = num_D
        for i in range(num_D):
            self.add_module(f"layer{i}", _patch_discriminator(input_nc, ndf, n_layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(self.num_D):
            out.append(getattr(self, f"layer{self.num_D - 1 - i}")(x))
            if i != self.num_D - 1:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return out


class Fusor(nn.Module):
    """``Fusor_Net``'s modules: ``G``, ``E``, ``D`` (optional) and the identity sampler ``Z``,
    registered in the checkpoint's order so ``state_dict()`` keys are ``G.*``, ``E.*``,
    ``D.*``, ``Z.*`` exactly as the official Lightning checkpoint's ``state_dict``.

    ``forward(composite, source)`` is inference: ``G(F.normalize(Z(source)), E(composite))``
    with ``composite`` the stage-1 output and ``source`` the black-filled occluded face
    (N×3×112×112 in [-1, 1]). :meth:`train_forward` returns what the training losses need.
    """

    def __init__(self, c_id: int = 256, *, with_discriminator: bool = True, width: int = 32,
                 sampler_layers: int = 50, sampler_width: int = 64) -> None:
        super().__init__()
        self.G = Generator(c_id, width=width)
        self.E = AttributesEncoder(width=width)
        self.D: Discriminator | None = Discriminator(3, ndf=2 * width) if with_discriminator else None
        self.Z = Sampler(sampler_layers, c_id, width=sampler_width)
        self._arch = {"c_id": c_id, "width": width, "sampler": self.Z.architecture()}

    def architecture(self) -> dict[str, Any]:
        """JSON-able constructor arguments (recorded in checkpoints)."""
        return dict(self._arch)

    def identity(self, source: torch.Tensor) -> torch.Tensor:
        """``F.normalize(Z(source))``: the unit identity vector."""
        return F.normalize(self.Z(source))

    def forward(self, composite: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return self.G(self.identity(source), self.E(composite))

    def train_forward(self, target: torch.Tensor, source: torch.Tensor) -> dict[str, Any]:
        """The official ``Fusor_Net.forward``: ``output``, ``z_id`` (detached, of ``source``),
        ``output_z_id`` (of the output; gradients flow through Z into G), ``z_att`` (E of
        ``target``) and ``output_z_att`` (E of the output)."""
        z_id = self.identity(source).detach()
        z_att = self.E(target)
        output = self.G(z_id, z_att)
        return {"output": output, "z_id": z_id, "output_z_id": self.identity(output),
                "z_att": z_att, "output_z_att": self.E(output)}


def fusor_from_state(state: dict[str, torch.Tensor], origin: str = "fusor checkpoint", *,
                     with_discriminator: bool | None = None) -> Fusor:
    """A :class:`Fusor` shaped like ``state`` (width, ``c_id`` and Z's shape read from its
    keys) with ``state`` loaded strictly: the official Lightning checkpoint's ``state_dict``
    (``G.``/``E.``/``D.``/``Z.``) or a ``fusor`` training stage's ``last.safetensors``
    (``G.``/``E.``/``Z.``). ``with_discriminator``: build (and load) D; default: when
    ``state`` has ``D.*`` keys. ``D.*`` keys are dropped when it is False."""
    from recogbench.checkpoint import CheckpointError, load_into

    from .sampler import sampler_from_state

    try:
        width = int(state["E.Encoder.layer_0.1.weight"].shape[0])
        c_id = int(state["G.convt.weight"].shape[0])
    except KeyError as exc:
        raise CheckpointError(f"{origin}: not an ID-Inpainter Fusor state dict (no {exc.args[0]})") from exc
    z = sampler_from_state({k[2:]: v for k, v in state.items() if k.startswith("Z.")}, f"{origin} (Z.*)")
    has_d = any(k.startswith("D.") for k in state)
    with_d = has_d if with_discriminator is None else with_discriminator
    if not with_d:
        state = {k: v for k, v in state.items() if not k.startswith("D.")}
    model = Fusor(c_id, with_discriminator=with_d, width=width, sampler_layers=z.num_layers, sampler_width=z.width)
    load_into(model, state, origin)
    return model


# ------------------------------------------------------------------------------- losses
# model/loss.py: F_Loss (attribute, identity, reconstruction) and GANLoss('hinge').


def attribute_loss(z_att: list[torch.Tensor], output_z_att: list[torch.Tensor]) -> torch.Tensor:
    """0.5 · Σ over the seven maps of their mean squared difference (neither side detached)."""
    return 0.5 * sum(F.mse_loss(a.float(), b.float()) for a, b in zip(z_att, output_z_att))


def identity_loss(z_id: torch.Tensor, output_z_id: torch.Tensor) -> torch.Tensor:
    """mean |1 - ⟨z_id, output_z_id⟩| over the batch (unit vectors)."""
    return (1 - (z_id.float() * output_z_id.float()).sum(1)).abs().mean()


def reconstruction_loss(target: torch.Tensor, output: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """0.5 · mean over the WHOLE batch of ``(same·(target - output))²``: self-reconstruction
    pairs only, but averaged over every element (so it scales with the share of such pairs),
    as the official ``rec_loss`` does."""
    s = same.float().view(-1, 1, 1, 1)
    return 0.5 * F.mse_loss(target.float() * s, output.float() * s)


def hinge_d_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Σ over scales of mean relu(1 - D(real)) + mean relu(1 + D(fake)), each averaged over scales."""
    n = len(real)
    return sum(F.relu(1 - r.float()).mean() for r in real) / n + sum(F.relu(1 + f.float()).mean() for f in fake) / n


def hinge_g_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """-mean D(fake), averaged over scales."""
    return -sum(f.float().mean() for f in fake) / len(fake)
