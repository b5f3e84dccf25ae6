"""Occlusion core: reproducibility, masks, manifests, suites, baking and replay, direction of effects."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recogbench.config import RunConfig
from recogbench.data import DataError
from recogbench.occlusion import REGIONS, expand_occlusion, item_rng, occlude_batch, suites
from recogbench.pipeline import conditions, run, run_all
from recogbench.registry import OCCLUDERS

from .conftest import shared_path, smooth_faces

BOXES = ["random_block", "random_part", *(f"region:{r}" for r in REGIONS)]


@pytest.mark.parametrize("spec", BOXES + ["random_block:fill=noise", "region:mouth:fill=white"])
def test_pure_function_of_seed_pair_side(spec: str) -> None:
    """Same (spec, seed, pair, side) -> same pixels, whatever the batch it arrives in."""
    occ = OCCLUDERS.create(spec)
    faces = smooth_faces(9, seed=1)
    pairs = np.arange(100, 109)
    whole, masks, records = occlude_batch(occ, faces, pairs, "second", 7)
    order = np.array([4, 0, 8, 2, 6, 1, 3, 7, 5])
    shuffled, smasks, _ = occlude_batch(occ, faces[order], pairs[order], "second", 7)
    np.testing.assert_array_equal(shuffled, whole[order])
    np.testing.assert_array_equal(smasks, masks[order])
    single, _, _ = occlude_batch(occ, faces[3:4], pairs[3:4], "second", 7)
    np.testing.assert_array_equal(single[0], whole[3])
    # the mask is exactly the changed pixels
    np.testing.assert_array_equal(masks, (whole != faces).any(axis=3))
    assert all(json.dumps(r) for r in records)
    assert {r["pair"] for r in records} == set(pairs.tolist())


def test_seed_and_side_change_random_occlusions() -> None:
    occ = OCCLUDERS.create("random_block")
    face = smooth_faces(1)[0]
    a = occ.occlude(face, item_rng(0, 5, "second")).record["block"]
    assert a == occ.occlude(face, item_rng(0, 5, "second")).record["block"]
    assert a != occ.occlude(face, item_rng(1, 5, "second")).record["block"] or a != occ.occlude(face, item_rng(0, 5, "first")).record["block"]


def test_random_block_is_64_square_inside_the_face() -> None:
    occ = OCCLUDERS.create("random_block")
    face = smooth_faces(1)[0]
    for pair in range(30):
        r = occ.occlude(face, item_rng(0, pair, "second")).record
        x1, y1, x2, y2 = r["block"]
        assert (x2 - x1, y2 - y1) == (64, 64) and x1 >= 0 and y1 >= 0 and x2 <= 112 and y2 <= 112
        assert r["coverage"] == pytest.approx(64 * 64 / 112**2)


def test_suites_are_data_and_expand() -> None:
    found = suites()
    assert {"id-inpainter-regions", "everyday", "freeform-coverage", "train-default"} <= set(found)
    assert expand_occlusion("id-inpainter-regions") == [f"region:{r}" for r in REGIONS]
    assert len(found["freeform-coverage"].occluders) == 6
    assert expand_occlusion("region:mouth+random_block") == ["region:mouth", "random_block"]
    assert expand_occlusion("region:mouth") == ["region:mouth"]
    # every occluder named by a shipped suite exists
    for suite in found.values():
        for spec in suite.occluders:
            assert OCCLUDERS.create(spec) is not None


def test_conditions_cross_occluders_and_inpainters() -> None:
    cfg = RunConfig(protocol="bin", data="x.bin", occlusion="region:mouth+region:nose", inpainter="none+oracle")
    got = [(c.occlusion, c.inpainter, s) for c, s in conditions(cfg)]
    assert got == [("region:mouth", "none", ""), ("region:mouth", "oracle", ""),
                   ("region:nose", "none", ""), ("region:nose", "oracle", "")]
    suite = conditions(replace(cfg, occlusion="id-inpainter-regions", inpainter="none"))
    assert len(suite) == 10 and {s for _, s in suite} == {"id-inpainter-regions"}


def test_suite_run_writes_one_row_per_condition_with_shared_manifests(tiny_pack: Path, tmp_path: Path) -> None:
    cfg = RunConfig(protocol="bin", data=str(tiny_pack), occlusion="random_block+region:nose",
                    inpainter="none+oracle", out=str(tmp_path), progress=False, device="cpu")
    results = run_all(cfg)
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(results) == len(board) == 4
    by = {(r.row["occlusion"], r.row["inpainter"]): r.row for r in results}
    # one manifest per occluder, identical for every inpainter compared on it
    assert by[("random_block", "none")]["manifest_hash"] == by[("random_block", "oracle")]["manifest_hash"]
    assert by[("random_block", "none")]["manifest_hash"] != by[("region:nose", "none")]["manifest_hash"]
    assert by[("random_block", "none")]["mean_coverage"] == pytest.approx(64 * 64 / 112**2)
    # batch size changes nothing
    again = run(replace(cfg, occlusion="random_block", inpainter="none", batch_size=3, out=str(tmp_path / "b")))
    assert again.row["manifest_hash"] == by[("random_block", "none")]["manifest_hash"]
    assert again.row["accuracy_mean"] == by[("random_block", "none")]["accuracy_mean"]


def test_bake_and_replay_equal_the_live_occlusion(tiny_pack: Path, tmp_path: Path) -> None:
    from recogbench.occlusion.bake import bake

    cfg = RunConfig(protocol="bin", data=str(tiny_pack), occlusion="random_block", out=str(tmp_path / "r"),
                    progress=False, device="cpu", seed=3)
    live = run(cfg)
    [folder] = bake(cfg, tmp_path / "baked")
    assert {"pack.bin", "masks.npz", "manifest.jsonl", "occlusion.json"} == {p.name for p in folder.iterdir()}
    clean_pack = tmp_path / "baked" / f"{tiny_pack.stem}.bin"  # shared by every occluder, named as the protocol
    replayed = run(replace(cfg, data=str(clean_pack), occlusion=f"baked:{folder}"))
    assert replayed.row["protocol"] == tiny_pack.stem and replayed.row["occlusion"].startswith("baked:random_block@")
    np.testing.assert_array_equal(replayed.scores, live.scores)
    as_is = run(replace(cfg, data=str(folder / "pack.bin"), occlusion="none"))
    np.testing.assert_array_equal(as_is.scores, live.scores)
    oracle = run(replace(cfg, data=str(clean_pack), occlusion=f"baked:{folder}", inpainter="oracle"))
    clean = run(replace(cfg, occlusion="none"))
    np.testing.assert_array_equal(oracle.scores, clean.scores)
    manifest = [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines()]
    assert [m["block"] for m in manifest] == [json.loads(x)["block"] for x in (live.run_dir / "manifest.jsonl").read_text().splitlines()]
    # replaying on another protocol's faces is refused, naming the folder
    with pytest.raises(DataError, match="differs from the baked clean image"):
        run(replace(cfg, occlusion=f"baked:{folder}"  , data=str(folder / "pack.bin")))


@pytest.mark.shared
def test_sface_direction_of_effects_on_deepface_pairs(tmp_path: Path) -> None:
    csv_path = shared_path("deepface-pairs", "pairs.csv")
    cfg = RunConfig(protocol="pairs_csv", data=str(csv_path), out=str(tmp_path), progress=False,
                    occlusion="none+region:twoeyes+region:up_face+region:mouth")
    rows = {r.row["occlusion"]: r.row for r in run_all(cfg)}
    clean = rows["none"]["mean_genuine"]
    assert rows["region:twoeyes"]["mean_genuine"] < clean - 0.05
    assert rows["region:up_face"]["mean_genuine"] < clean - 0.05
    assert clean - rows["region:mouth"]["mean_genuine"] < clean - rows["region:up_face"]["mean_genuine"]


def test_gallery_draws_every_occluder(tmp_path: Path, tiny_pack: Path) -> None:
    import cv2

    from recogbench.gallery import gallery

    path = gallery("region:mouth+random_block", tmp_path / "g.png", protocol="bin", data=str(tiny_pack), n=4)
    img = cv2.imread(str(path))
    assert img.shape[0] == 3 * 112 and img.shape[1] >= 4 * 112


def test_bake_stores_the_clean_faces_once_per_protocol(tiny_pack: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recogbench.cli import app

    out = tmp_path / "baked"
    r = CliRunner().invoke(app, ["occlude", "bin", "--data", str(tiny_pack), "--occlusion", "random_block+region:mouth",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{tiny_pack.stem}.bin", "random_block", "region_mouth"])
    metas = [json.loads((out / d / "occlusion.json").read_text()) for d in ("random_block", "region_mouth")]
    assert {m["clean"] for m in metas} == {f"{tiny_pack.stem}.bin"} and len({m["clean_sha256"] for m in metas}) == 1
    said = " ".join(r.output.split())  # the console wraps long lines
    assert f"--data {out / (tiny_pack.stem + '.bin')} --occlusion baked:{out / 'random_block'}" in said
    # The manifest names the baked folder, not where it lies.
    run_out = tmp_path / "res"
    r = CliRunner().invoke(app, ["run", "bin", "--data", str(out / f"{tiny_pack.stem}.bin"), "--occlusion",
                                 f"baked:{out / 'region_mouth'}", "--out", str(run_out), "-q", "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    manifests = "".join(p.read_text() for p in run_out.glob("runs/*/*/manifest.jsonl"))
    assert '"baked": "region_mouth"' in manifests and str(tmp_path) not in manifests
