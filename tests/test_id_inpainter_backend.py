"""The ``id-inpainter`` backend: blend modes and the leak, identity source, the end-to-end path
against the official outputs, loading the released file formats, and rows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from inpainters.id_inpainter.blend import poisson_blend, published_blend, to_pil_uint8
from recogbench.checkpoint import CheckpointError
from recogbench.registry import INPAINTERS

from .conftest import face_batch, fidelity_pack, smooth_faces

# The official 112-px boxes (x0, y0, x1, y1), exclusive ends (prepare_inpainted_datasets.get_occ_boxs_v2).
MOUTH = (33, 82, 83, 107)
CENTER_BLOCK = (32, 32, 80, 80)
TWOEYES = (18, 30, 98, 70)


def box_hole(box: tuple[int, int, int, int], size: int = 112) -> np.ndarray:
    x0, y0, x1, y1 = box
    hole = np.zeros((size, size), bool)
    hole[y0:y1, x0:x1] = True
    return hole


def textured_faces(n: int, seed: int) -> np.ndarray:
    """Smooth faces plus fine noise, so that equal pixels mean copied pixels, not flat colour."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-12, 13, size=(n, 112, 112, 3))
    return np.clip(smooth_faces(n, seed).astype(int) + noise, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- blends


def test_published_blend_transposes_the_mask_and_returns_the_original_pixels() -> None:
    clean, fused = textured_faces(2, seed=1)
    for box, at_least, at_most in ((MOUTH, 0.99, 1.0), (CENTER_BLOCK, 0.0, 0.1), (TWOEYES, 0.45, 0.65)):
        hole = box_hole(box)
        out = published_blend(fused, clean, hole)
        share = (out == clean).all(-1)[hole].mean()
        assert at_least <= share <= at_most, (box, share)
        # what the official code computes: the mask as (W, H, C), i.e. the hole transposed
        mask = (hole.T.astype(np.uint8) * 255)
        x, y, w, h = cv2.boundingRect(mask)
        ref = cv2.seamlessClone(fused[..., ::-1].copy(), clean[..., ::-1].copy(), mask, (x + w // 2, y + h // 2),
                                cv2.NORMAL_CLONE)[..., ::-1]
        assert np.array_equal(out, ref)


def test_poisson_blend_reads_only_visible_pixels_and_works_at_the_border() -> None:
    clean, fused = textured_faces(2, seed=2)
    for box in (TWOEYES, (0, 80, 112, 112)):  # the second touches three borders
        hole = box_hole(box)
        occ_a, occ_b = clean.copy(), clean.copy()
        occ_a[hole], occ_b[hole] = 0, 255  # two different occluders over the same hole
        a, b = poisson_blend(fused, occ_a, hole), poisson_blend(fused, occ_b, hole)
        assert np.array_equal(a[hole], b[hole])  # the occluder never reaches the result
        assert not np.array_equal(a[hole], fused[hole])  # the colours were adapted
        assert (a[hole].astype(int) - clean[hole]).std() < (fused[hole].astype(int) - clean[hole]).std() * 1.5


def test_to_pil_uint8_truncates_like_torchvision() -> None:
    x = torch.tensor([-1.0, -0.999, 0.0, 0.999, 1.0, 1.5]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    assert to_pil_uint8(x)[0, 0, :, 0].tolist() == [0, 0, 127, 254, 255, 255]


# ----------------------------------------------------------------------------- the backend


def make(paths: dict[str, Path], **options) -> object:
    return INPAINTERS.create("id-inpainter", ca=str(paths["ca"]), fusor=str(paths["fusor"]), device="cpu", **options)


def test_refuses_without_checkpoints_and_names_bad_options() -> None:
    with pytest.raises(ValueError, match="needs both checkpoints"):
        INPAINTERS.create("id-inpainter")
    with pytest.raises(ValueError, match="blend must be one of composite, poisson, published"):
        INPAINTERS.create("id-inpainter", ca="a", fusor="b", blend="seamless")
    with pytest.raises(ValueError, match="identity must be one of occluded, reference"):
        INPAINTERS.create("id-inpainter", ca="a", fusor="b", identity="clean")


def test_wrong_checkpoints_are_refused_naming_the_file_and_keys(id_inpainter_checkpoints, tiny_pconv_checkpoint,
                                                                tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"tiny\.safetensors: not an ID-Inpainter CA generator"):
        make({"ca": tiny_pconv_checkpoint, "fusor": id_inpainter_checkpoints["fusor"]})
    from safetensors.torch import load_file, save_file

    ca = load_file(str(id_inpainter_checkpoints["ca"]))
    dropped = next(k for k in ca if "contextul_attention" not in k and k.endswith("bias"))
    save_file({k: v for k, v in ca.items() if k != dropped}, str(tmp_path / "ca_short.safetensors"))
    with pytest.raises(CheckpointError, match=rf"ca_short\.safetensors.*missing keys: {dropped}"):
        make({"ca": tmp_path / "ca_short.safetensors", "fusor": id_inpainter_checkpoints["fusor"]})
    with pytest.raises(CheckpointError, match=r"ca\.safetensors.*not an ID-Inpainter fusor checkpoint"):
        make({"ca": id_inpainter_checkpoints["ca"], "fusor": id_inpainter_checkpoints["ca"]})

    state = load_file(str(id_inpainter_checkpoints["fusor"]))
    key = next(k for k in state if k.startswith("G.") and state[k].ndim == 4)
    state[key] = state[key][:, :-1].contiguous()
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=rf"bad\.safetensors.*shape mismatch: {key}"):
        make({"ca": id_inpainter_checkpoints["ca"], "fusor": tmp_path / "bad.safetensors"})
    missing = {k: v for k, v in load_file(str(id_inpainter_checkpoints["fusor"])).items() if not k.startswith("Z.")}
    save_file(missing, str(tmp_path / "noz.safetensors"))
    with pytest.raises(CheckpointError, match="no sampler weights.*sampler=PATH"):
        make({"ca": id_inpainter_checkpoints["ca"], "fusor": tmp_path / "noz.safetensors"})


def faces_and_holes(n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    clean = face_batch(n, seed=seed)
    masks = torch.zeros(n, 1, 112, 112)
    for i, box in enumerate([TWOEYES, MOUTH, CENTER_BLOCK, (10, 10, 50, 60)][:n]):
        masks[i, 0] = torch.from_numpy(box_hole(box))
    return clean, masks


@pytest.mark.slow
def test_batched_equals_one_by_one_with_different_masks(id_inpainter_checkpoints, one_torch_thread) -> None:
    inp = make(id_inpainter_checkpoints)
    clean, masks = faces_and_holes(3)
    occluded = clean * (1 - masks)
    batched = inp.inpaint(occluded, masks)
    alone = torch.cat([inp.inpaint(occluded[i:i + 1], masks[i:i + 1]) for i in range(3)])
    assert (batched - alone).abs().max() <= 1e-5


@pytest.mark.slow
def test_blend_modes_and_what_they_read(id_inpainter_checkpoints, one_torch_thread) -> None:
    clean, masks = faces_and_holes(2, seed=3)
    occluded = clean * (1 - masks) + masks * 0.3  # a grey occluder
    composite = make(id_inpainter_checkpoints)
    assert not composite.needs_clean and composite.composites and not composite.needs_identity
    out = composite.inpaint(occluded, masks)
    assert torch.equal(out[masks.expand_as(out) == 0], occluded[masks.expand_as(out) == 0])

    poisson = make(id_inpainter_checkpoints, blend="poisson")
    assert not poisson.needs_clean
    other_occluder = clean * (1 - masks) + masks * 0.9
    assert torch.equal(poisson.inpaint(occluded, masks), poisson.inpaint(other_occluder, masks))

    published = make(id_inpainter_checkpoints, blend="published")
    assert published.needs_clean and not published.composites
    with pytest.raises(ValueError, match="needs the clean images"):
        published.inpaint(occluded, masks)
    leaked = published.inpaint(occluded, masks, clean=clean)
    # sample 1 is the mouth box: the published blend returns (truncated) original pixels there
    hole = masks[1, 0].bool()
    original = torch.from_numpy(to_pil_uint8(clean[1:2] * 2 - 1)).permute(0, 3, 1, 2)[0].float() / 255
    assert (leaked[1][:, hole] == original[:, hole]).all(0).float().mean() > 0.99
    assert published.params()["blend"] == "published"


@pytest.mark.slow
def test_identity_source_reference_and_the_self_grading_guard(id_inpainter_checkpoints, one_torch_thread) -> None:
    from recogbench.pipeline import _guard_self_grading

    clean, masks = faces_and_holes(2)
    ref = make(id_inpainter_checkpoints, identity="reference")
    assert ref.needs_identity and ref.params()["identity"] == "reference"
    with pytest.raises(ValueError, match="needs an identity reference"):
        ref.inpaint(clean * (1 - masks), masks)
    a = ref.inpaint(clean * (1 - masks), masks, identity=clean)
    b = ref.inpaint(clean * (1 - masks), masks, identity=clean.flip(0))
    assert not torch.equal(a, b)  # the reference steers the result

    class SameWeights:
        name, model_digest = "twin", ref.identity_model_digest

    with pytest.raises(ValueError, match="same identity model"):
        _guard_self_grading(ref, SameWeights(), allow=False)
    _guard_self_grading(ref, SameWeights(), allow=True)
    published_default = make(id_inpainter_checkpoints)  # Z on the occluded probe is guarded too
    with pytest.raises(ValueError, match="same identity model"):
        _guard_self_grading(published_default, SameWeights(), allow=False)


# ------------------------------------------------------------ the official outputs, end to end


@pytest.mark.slow
def test_released_formats_load_and_the_chain_reproduces_the_official_output(id_inpainter_pack_checkpoints,
                                                                             one_torch_thread) -> None:
    """CA filled by the CA pack's rule (a plain torch state dict, as gen_00700000.pt) and the
    fusor by the fusor pack's rule (a Lightning-style .ckpt) — loaded through the backend, the
    backend's own path reproduces the official Fusor output on the official CA composite."""
    fill, ca_pack = fidelity_pack("id-inpainter-ca")
    _, fusor_pack = fidelity_pack("id-inpainter-fusor")
    inp = make(id_inpainter_pack_checkpoints)
    target = torch.from_numpy(ca_pack.inputs["target"])
    hole = torch.from_numpy(ca_pack.inputs["hole"])
    with torch.no_grad():
        out = torch.cat([inp.regenerate(target[i:i + 1], hole[i:i + 1]) for i in range(len(target))])
    res = fill.compare({"output": out}, fusor_pack)
    assert all(ok for _, _, ok in res.values()), res
    # through the public [0, 1] contract: the pack's faces are 8-bit, so the inputs are bit-identical
    u8 = torch.round((target * 0.5 + 0.5) * 255)
    images = u8 / 255.0
    assert torch.equal((images - 0.5) / 0.5, target)
    published = make(id_inpainter_pack_checkpoints, blend="published")
    got = torch.cat([published.inpaint(images[i:i + 1] * (1 - hole[i:i + 1]), hole[i:i + 1], clean=images[i:i + 1])
                     for i in range(len(target))])
    expected = [published_blend(f, c, h) for f, c, h in
                zip(to_pil_uint8(torch.from_numpy(fusor_pack.outputs["output"])), to_pil_uint8(target),
                    hole[:, 0].bool().numpy())]
    got_u8 = np.rint(got.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    # equal wherever the fusor output is not within the pack's tolerance of a rounding boundary
    assert np.mean(got_u8 == np.stack(expected)) > 0.999


# ------------------------------------------------------------------------------------ rows


@pytest.mark.slow
def test_rows_record_blend_identity_digests_and_the_leak(id_inpainter_checkpoints, tiny_pack: Path, tmp_path: Path,
                                                          one_torch_thread) -> None:
    from recogbench import report
    from recogbench.config import RunConfig
    from recogbench.pipeline import run_all

    spec = f"id-inpainter:ca={id_inpainter_checkpoints['ca']},fusor={id_inpainter_checkpoints['fusor']}"
    out = tmp_path / "out"
    results = run_all(RunConfig(protocol="bin", data=str(tiny_pack), out=str(out), device="cpu", progress=False,
                                occlusion="region:mouth", inpainter=f"none+{spec}+{spec},blend=published"))
    rows = {r.row["inpainter_settings"].split(";")[0]: r.row for r in results if r.row["inpainter"] != "none"}
    honest, leak = rows["blend=composite"], rows["blend=published"]
    assert honest["reads_clean"] is False and leak["reads_clean"] is True
    for row in (honest, leak):
        settings = row["inpainter_settings"]
        assert "ca_sha256=" in settings and "fusor_sha256=" in settings and "identity=occluded" in settings
    assert honest["hole_equal_clean"] < 0.2 and leak["hole_equal_clean"] > 0.95
    assert honest["config_hash"] != leak["config_hash"]
    df = report.leaderboard(out, sort="accuracy_mean")
    assert report.reads_clean(df).tolist()[-1] is True  # never ranked among honest rows
    html = report.render_html(out)
    assert html.count("reads clean pixels</span>") == 1


# ------------------------------------------------------------------------- trained, then used


@pytest.mark.slow
def test_three_stages_train_through_the_cli_loop_and_load_into_the_backend(tmp_path: Path, one_torch_thread) -> None:
    """`recogbench train id-inpainter --stage ca|sampler|fusor` through the one training loop at a
    narrow width; the stages' checkpoints then load into the backend and restore faces."""
    from recogbench.train import TrainConfig, train

    faces = textured_faces(12, seed=5)
    data = tmp_path / "people"
    for k, face in enumerate(faces):  # 4 identities × 3 photos (the sampler needs person folders)
        folder = data / f"person{k % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{k}.png"), face[..., ::-1])
    common = dict(inpainter="id-inpainter", data=str(data), aligned=True, steps=2, batch_size=2, base_channels=4,
                  checkpoint_every=2, sample_every=2, val_fraction=0.25, device="cpu", occlusion="region:twoeyes")
    ca = train(TrainConfig(out=str(tmp_path / "ca"), stage="ca", **common), progress=False)
    sampler = train(TrainConfig(out=str(tmp_path / "sampler"), stage="sampler", **common), progress=False)
    fusor = train(TrainConfig(out=str(tmp_path / "fusor"), stage="fusor", identity_model=str(sampler.checkpoint),
                              **common), progress=False)
    for result in (ca, sampler, fusor):
        assert result.step == 2 and (result.out / "log.csv").is_file() and (result.out / "samples").is_dir()
    inp = make({"ca": ca.checkpoint, "fusor": fusor.checkpoint})
    clean, masks = faces_and_holes(2)
    out = inp.inpaint(clean * (1 - masks), masks)
    assert out.shape == clean.shape and torch.isfinite(out).all()
    # the sampler stage's file is also what sampler= takes (Z replaced, digest recorded)
    inp2 = make({"ca": ca.checkpoint, "fusor": fusor.checkpoint}, sampler=str(sampler.checkpoint))
    assert "sampler_sha256" in inp2.params()
    with pytest.raises(ValueError, match="--stage ca\\|fusor\\|sampler"):
        train(TrainConfig(out=str(tmp_path / "x"), **common), progress=False)
