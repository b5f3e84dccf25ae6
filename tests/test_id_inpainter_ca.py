"""ID-Inpainter stage 1 (contextual-attention inpainter): fidelity to the official code
(through the ../shared/fidelity pack), per-sample batching, checkpoint loading, critics,
loss helpers and the trainer."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inpainters.id_inpainter.ca import (
    CAGenerator,
    CALossWeights,
    CATrainer,
    ContextualAttention,
    GlobalDis,
    LocalDis,
    discount_weights,
    local_boxes,
)
from recogbench.checkpoint import CheckpointError, load_into
from recogbench.train import TrainConfig

from .conftest import face_batch, fidelity_pack

PACK = "id-inpainter-ca"
# The official boxes of the pack (x0, y0, x1, y1; exclusive ends): twoeyes, down_face, center_block.
BOXES = ((18, 30, 98, 70), (16, 60, 100, 110), (32, 32, 80, 80))
# Modules whose outputs the pack stores (act.<name>; the attention under its corrected spelling).
HOOKED = ("coarse_generator.conv12", "fine_generator.conv10_atrous", "fine_generator.pmconv6",
          "fine_generator.contextul_attention", "fine_generator.allconv12")


def box_holes(boxes=BOXES) -> torch.Tensor:
    hole = torch.zeros(len(boxes), 1, 112, 112)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        hole[i, :, y0:y1, x0:x1] = 1
    return hole


def config(**kw) -> TrainConfig:
    base = dict(inpainter="id-inpainter", data="unused", out="unused", lr=1e-4, base_channels=4, seed=0)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def filled():
    """(fill, pack, filled generator, per-sample outputs and hooked activations); one thread,
    as the pack was made."""
    fill, pack = fidelity_pack(PACK)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = CAGenerator().eval()
        assert fill.check_keys(model.state_dict(), pack.meta["keys"]) == []
        fill.fill_module_(model, pack.gain)
        acts: dict[str, list[torch.Tensor]] = {name: [] for name in HOOKED}
        modules = dict(model.named_modules())
        handles = [modules[name].register_forward_hook(
            lambda mod, inp, out, name=name: acts[name].append((out[0] if isinstance(out, tuple) else out).detach()))
            for name in HOOKED]
        masked, hole = (torch.from_numpy(pack.inputs[k]) for k in ("masked", "hole"))
        with torch.no_grad():
            outs = [model(masked[i:i + 1], hole[i:i + 1]) for i in range(len(masked))]   # one image per call
        for h in handles:
            h.remove()
    finally:
        torch.set_num_threads(threads)
    x1, x2 = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    got = {"x_stage1": x1, "x_stage2": x2, "inpaint": x2 * hole + masked * (1 - hole)}
    for name in HOOKED:
        key = "act." + name.replace("contextul_attention", "contextual_attention")
        got.update({key + suffix: v for suffix, v in fill.summarise(torch.cat(acts[name])).items()})
    return fill, pack, model, got


# ------------------------------------------------------------------------------ fidelity


def test_keys_shapes_order_equal_the_official_checkpoint() -> None:
    fill, pack = fidelity_pack(PACK)
    model = CAGenerator()
    assert fill.check_keys(model.state_dict(), pack.meta["keys"]) == []
    assert sum(p.numel() for p in model.parameters()) == pack.meta["n_parameters"] == 3_601_542


def test_size_without_the_pack() -> None:
    state = CAGenerator().state_dict()
    assert len(state) == 84 and sum(v.numel() for v in state.values()) == 3_601_542
    assert list(state)[:2] == ["coarse_generator.conv1.conv.weight", "coarse_generator.conv1.conv.bias"]
    assert tuple(state["fine_generator.allconv11.conv.weight"].shape) == (128, 256, 3, 3)


@pytest.mark.slow
def test_outputs_and_intermediates_match_the_official_code(filled) -> None:
    fill, pack, _, got = filled
    assert set(got) == set(pack.outputs), "every stored tensor is compared"
    res = fill.compare(got, pack)
    report = "; ".join(f"{k}: max|diff| {d:.3g} (atol {tol:.3g}, {d / tol:.3f}×)" for k, (d, tol, _) in res.items())
    bad = [k for k, (_, _, ok) in res.items() if not ok]
    assert not bad, f"outside atol: {bad}; {report}"
    # A faithful port lands well under atol (this one is bit-identical at 1 thread on torch 2.13).
    worst = max(d / tol for d, tol, _ in res.values())
    assert worst < 0.25, report


@pytest.mark.slow
def test_batched_call_equals_per_sample_calls(filled, one_torch_thread) -> None:
    """Three different masks in one call == three single calls (the official batched call
    uses sample 0's mask for all; ``share_first_mask`` reproduces that, and it is caught)."""
    _, pack, model, got = filled
    masked, hole = (torch.from_numpy(pack.inputs[k]) for k in ("masked", "hole"))
    with torch.no_grad():
        x1, x2, flow = model(masked, hole)
    d1 = float((x1 - got["x_stage1"]).abs().max())
    d2 = float((x2 - got["x_stage2"]).abs().max())
    assert d1 <= 1e-5 and d2 <= 1e-5, f"batched vs single: x_stage1 {d1:.3g}, x_stage2 {d2:.3g} (limit 1e-5)"
    assert flow.shape == (3, 2, 32, 32)

    attention = model.fine_generator.contextual_attention
    attention.share_first_mask = True
    try:
        with torch.no_grad():
            official = model(masked, hole)[1]
    finally:
        attention.share_first_mask = False
    atol = pack.atol("x_stage2")
    assert float((official[0] - got["x_stage2"][0]).abs().max()) <= 1e-5
    for i in (1, 2):
        d = float((official[i] - got["x_stage2"][i]).abs().max())
        assert d > 100 * atol, f"sample {i}: sample 0's mask should change it (max|diff| {d:.3g})"


def test_batched_call_equals_per_sample_calls_without_the_pack(one_torch_thread) -> None:
    """The same property with seeded weights and a narrow model (runs without ../shared)."""
    torch.manual_seed(0)
    model = CAGenerator(ngf=8).eval()
    hole = box_holes()
    x = (face_batch(3, seed=4) * 2 - 1) * (1 - hole)
    with torch.no_grad():
        batched = model(x, hole)
        single = [model(x[i:i + 1], hole[i:i + 1]) for i in range(3)]
    for j, name in enumerate(("x_stage1", "x_stage2", "offset_flow")):
        d = float((batched[j] - torch.cat([s[j] for s in single])).abs().max())
        assert d <= 1e-5, f"{name}: batched vs single max|diff| {d:.3g}"


def test_strict_loading_through_the_checkpoint_loader() -> None:
    fill, pack = fidelity_pack(PACK)
    state = fill.fill_state_dict(pack.meta["keys"], pack.gain)        # the checkpoint-shaped dict
    model = CAGenerator()
    load_into(model, state, "gen_00700000.pt")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())

    key = "fine_generator.pmconv6.conv.weight"
    bad = {**state, key: torch.zeros(128, 128, 5, 5)}
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        load_into(CAGenerator(), bad, "gen_bad.pt")
    with pytest.raises(CheckpointError, match="module"):
        load_into(CAGenerator(), {f"module.{k}": v for k, v in state.items()}, "dataparallel.pt")


def test_rejects_other_sizes() -> None:
    with pytest.raises(ValueError, match="112"):
        CAGenerator(ngf=4)(torch.zeros(1, 3, 128, 128), torch.zeros(1, 1, 128, 128))


# ---------------------------------------------------------------------- contextual attention


def _pad(x: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
    return F.pad(x, (top, bottom, top, bottom))


def reference_attention(f, b, mask, scale=10.0):
    """The official algorithm, one sample at a time, written out with plain convolutions
    (rate 2, 3×3 matching, 3×3 identity fuse, SAME padding on even sizes)."""
    ys, flows = [], []
    eye = torch.eye(3, dtype=f.dtype).view(1, 1, 3, 3)
    for i in range(f.shape[0]):
        fi, bi, mi = f[i:i + 1], b[i:i + 1], mask[i:i + 1]
        c = fi.shape[1]
        raw = F.unfold(_pad(bi, 1, 1), 4, stride=2)
        raw = raw.view(c, 4, 4, -1).permute(3, 0, 1, 2)                      # L×C×4×4
        fs, bs = fi[:, :, ::2, ::2], bi[:, :, ::2, ::2]                      # legacy nearest ×1/2
        h, w = fs.shape[-2:]
        wi = F.unfold(_pad(bs, 1, 1), 3).view(c, 3, 3, -1).permute(3, 0, 1, 2)
        wi = wi / torch.sqrt((wi ** 2 + 1e-4).sum(dim=(1, 2, 3), keepdim=True))
        y = F.conv2d(_pad(fs, 1, 1), wi)                                     # 1×L×h×w
        y = F.conv2d(_pad(y.reshape(1, 1, h * w, h * w), 1, 1), eye)
        y = y.view(h, w, h, w).permute(1, 0, 3, 2).reshape(1, 1, h * w, h * w)
        y = F.conv2d(_pad(y, 1, 1), eye).view(w, h, w, h).permute(1, 0, 3, 2).reshape(1, h * w, h, w)
        m = F.interpolate(mi, size=(h, w), mode="nearest")
        ok = (F.unfold(_pad(m, 1, 1), 3).sum(1) == 0).to(f.dtype).view(1, -1, 1, 1)
        y = F.softmax(y * ok * scale, dim=1) * ok
        best = y.argmax(1)[0]
        flows.append(torch.stack([best // w - torch.arange(h).view(h, 1), best % w - torch.arange(w)]))
        ys.append(F.conv_transpose2d(y, raw, stride=2, padding=1) / 4)
    return torch.cat(ys), torch.stack(flows).to(f.dtype)


def test_contextual_attention_equals_the_per_sample_reference() -> None:
    gen = torch.Generator().manual_seed(1)
    f = torch.randn(3, 4, 16, 16, generator=gen, dtype=torch.float64)
    mask = torch.zeros(3, 1, 28, 28, dtype=torch.float64)
    mask[0, :, 4:12, 6:20] = 1
    mask[1, :, 14:28, 0:28] = 1                                              # sample 2: no hole
    y, flow = ContextualAttention()(f, f, mask)
    y_ref, flow_ref = reference_attention(f, f, mask)
    assert y.dtype == torch.float64 and y.shape == f.shape and flow.shape == (3, 2, 8, 8)
    assert float((y - y_ref).abs().max()) < 1e-12
    assert torch.equal(flow, flow_ref)
    # Official batching (sample 0's mask for all): sample 0 unchanged, sample 1 not.
    y_off, _ = ContextualAttention(share_first_mask=True)(f, f, mask)
    assert torch.equal(y_off[0], y[0]) and float((y_off[1] - y[1]).abs().max()) > 1e-3


def test_contextual_attention_ignores_hole_patches() -> None:
    """Patches touching the hole get zero weight: with everything masked, nothing is pasted."""
    f = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y, flow = ContextualAttention()(f, f, torch.ones(1, 1, 16, 16, dtype=torch.float64))
    assert torch.equal(y, torch.zeros_like(y))
    y, _ = ContextualAttention()(f, f, None)
    assert float(y.abs().max()) > 0


# ------------------------------------------------------------------------------ critics, helpers


def test_discriminators_shapes_and_keys() -> None:
    local, glob = LocalDis(3, 32), GlobalDis(3, 32)
    assert tuple(local.state_dict()["linear.weight"].shape) == (1, 32 * 4 * 4 * 4)
    assert tuple(glob.state_dict()["linear.weight"].shape) == (1, 32 * 4 * 8 * 8)
    assert tuple(local.state_dict()["dis_conv_module.conv4.conv.weight"].shape) == (128, 128, 5, 5)
    assert local(torch.zeros(2, 3, 64, 64)).shape == (2, 1)
    assert glob(torch.zeros(2, 3, 112, 112)).shape == (2, 1)


def test_discount_weights_rectangle_and_border() -> None:
    hole = torch.zeros(2, 1, 20, 20)
    hole[0, :, 4:12, 6:16] = 1                       # 8×10 inside the image
    hole[1, :, 0:6, 0:20] = 1                        # touches three image borders
    wts = discount_weights(hole, 0.9)
    assert torch.equal(wts[hole == 0], torch.zeros(int((hole == 0).sum())))
    i, j = np.meshgrid(np.arange(8), np.arange(10), indexing="ij")
    d = np.minimum(np.minimum(i, 7 - i), np.minimum(j, 9 - j))
    assert np.allclose(wts[0, 0, 4:12, 6:16].numpy(), 0.9 ** d)
    # Only the known row below counts: weight decays with the distance from row 6.
    expect = 0.9 ** (5 - np.arange(6))
    assert np.allclose(wts[1, 0, 0:6, 10].numpy(), expect)


def test_local_boxes_are_64_px_and_cover_the_hole() -> None:
    hole = box_holes(((18, 30, 98, 70), (40, 40, 60, 60), (0, 100, 10, 112), (0, 0, 0, 0)))
    boxes = local_boxes(hole)
    assert boxes.tolist()[1] == [18.0, 18.0, 82.0, 82.0]
    assert boxes.tolist()[2] == [0.0, 48.0, 64.0, 112.0]
    assert boxes.tolist()[3] == [24.0, 24.0, 88.0, 88.0]              # no hole: the centre
    x0, y0, x1, y1 = boxes.tolist()[0]
    assert x1 - x0 == y1 - y0 == 80 and x0 <= 18 and x1 >= 98 and y0 <= 30 and y1 >= 70


# ---------------------------------------------------------------------------------- trainer


def test_trainer_refuses_other_sizes() -> None:
    with pytest.raises(ValueError, match="112"):
        CATrainer(config(size=128), torch.device("cpu"))


def test_trainer_restore_is_inference(one_torch_thread) -> None:
    trainer = CATrainer(config(), torch.device("cpu"))
    clean, hole = face_batch(2, seed=3), box_holes()[:2]
    occluded = torch.where(hole.bool(), torch.rand_like(clean), clean)       # occluder content: ignored
    restored = trainer.restore(occluded, hole)
    with torch.no_grad():
        _, x2, _ = trainer.generator.eval()((clean * 2 - 1) * (1 - hole), hole)
    assert restored.shape == (2, 3, 112, 112) and restored.dtype == torch.float32
    assert 0 <= float(restored.min()) and float(restored.max()) <= 1
    assert torch.equal(restored, x2 * 0.5 + 0.5)


def test_trainer_updates_generator_every_n_critic_steps_and_resumes(one_torch_thread) -> None:
    trainer = CATrainer(config(), torch.device("cpu"), weights=CALossWeights(n_critic=3))
    clean, hole = face_batch(2, seed=6), box_holes()[:2]
    occluded = clean * (1 - hole)
    g0 = {k: v.clone() for k, v in trainer.generator_state().items()}
    d0 = {k: v.clone() for k, v in trainer.discriminator_state().items()}
    for _ in range(2):
        losses = trainer.step(clean, occluded, hole)
        assert set(losses) == set(trainer.loss_names) and all(np.isfinite(list(losses.values())))
    assert all(torch.equal(g0[k], v) for k, v in trainer.generator_state().items()), "critic-only steps"
    assert not all(torch.equal(d0[k], v) for k, v in trainer.discriminator_state().items())
    assert set(trainer.discriminator_state()) == {f"localD.{k}" for k in LocalDis(3, 4).state_dict()} | {
        f"globalD.{k}" for k in GlobalDis(3, 4).state_dict()}
    trainer.step(clean, occluded, hole)
    assert not all(torch.equal(g0[k], v) for k, v in trainer.generator_state().items()), "3rd step updates G"

    # Round trip through weights-only torch serialisation, then both take the same step.
    buf = io.BytesIO()
    torch.save(trainer.optimizer_state(), buf)
    opt = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    other = CATrainer(config(seed=9), torch.device("cpu"), weights=CALossWeights(n_critic=3))
    other.load_state(trainer.generator_state(), trainer.discriminator_state(), opt, "memory")
    assert other.iteration == trainer.iteration == 3
    results = []
    for t in (trainer, other):
        torch.manual_seed(5)
        for _ in range(3):
            losses = t.step(clean, occluded, hole)
        results.append((losses, t.generator_state()))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(v, results[1][1][k]) for k, v in results[0][1].items())
    with pytest.raises(CheckpointError, match="optimizer"):
        other.load_state(trainer.generator_state(), trainer.discriminator_state(), {}, "memory")

    meta = trainer.meta()
    assert meta["architecture"] == {"input_dim": 3, "ngf": 4} and meta["size"] == 112
    assert meta["loss_weights"]["n_critic"] == 3


@pytest.mark.slow
def test_trainer_learns_on_tiny_faces(one_torch_thread) -> None:
    """Hole L1 of restore() against the clean faces drops clearly in 24 steps (narrow model,
    a generator update every step, lr 1e-3: the published 1e-4 and n_critic 5 are too slow for a test)."""
    n = 4
    trainer = CATrainer(config(lr=1e-3, batch_size=n), torch.device("cpu"), weights=CALossWeights(n_critic=1))
    clean = face_batch(n, seed=5)
    hole = torch.zeros(n, 1, 112, 112)
    hole[:, :, 40:80, 30:86] = 1
    occluded = clean * (1 - hole)

    def hole_l1() -> float:
        restored = trainer.restore(occluded, hole)
        return float(((restored - clean).abs() * hole).sum() / (3 * hole.sum()))

    first = hole_l1()
    history = [trainer.step(clean, occluded, hole) for _ in range(24)]
    last = hole_l1()
    assert all(np.isfinite(list(h.values())).all() for h in history)
    assert last < 0.9 * first, f"hole L1 {first:.4f} → {last:.4f}"  # 0.217 → 0.18 here
    assert history[-1]["l1"] < history[0]["l1"] and history[-1]["ae"] < history[0]["ae"]
