"""Where ``real:FOLDER`` cut-outs go without masks.cfg: a sidecar per file, the folder's
``region=``, or the kind named in the file name; a folder that leaves a cut-out's place
unknown is refused naming it. Cut-outs are drawn here (never copied from shared data)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from recogbench.data import DataError
from recogbench.occlusion import face_landmarks, item_rng
from recogbench.occlusion.real import HAND_TARGETS, KINDS, PLACES, RealOccluder, kind_of
from recogbench.registry import OCCLUDERS

from .test_occlusion_pose import turned_face

LM = face_landmarks(112).astype(np.float64)


def draw_cutout(kind: str) -> np.ndarray:
    """A small BGRA cut-out of ``kind`` (cap, sunglasses, mask, mic, hand, thing) on a
    transparent background, in the proportions of the real object."""
    if kind == "cap":
        img = np.zeros((170, 300, 4), np.uint8)
        cv2.ellipse(img, (150, 140), (125, 120), 0, 180, 360, (40, 40, 200, 255), -1, cv2.LINE_AA)  # crown
        cv2.ellipse(img, (150, 140), (145, 26), 0, 0, 180, (30, 30, 150, 255), -1, cv2.LINE_AA)  # brim
        cv2.rectangle(img, (25, 132), (275, 141), (30, 30, 150, 255), -1)
    elif kind == "sunglasses":
        img = np.zeros((110, 330, 4), np.uint8)
        for cx in (95, 235):
            cv2.ellipse(img, (cx, 55), (62, 42), 0, 0, 360, (25, 25, 25, 255), -1, cv2.LINE_AA)
            cv2.ellipse(img, (cx - 15, 40), (18, 8), -20, 0, 360, (90, 90, 90, 255), -1, cv2.LINE_AA)  # glare
        cv2.line(img, (150, 40), (180, 40), (20, 20, 20, 255), 8, cv2.LINE_AA)  # bridge
        cv2.line(img, (5, 40), (35, 45), (20, 20, 20, 255), 7, cv2.LINE_AA)  # temples
        cv2.line(img, (325, 40), (295, 45), (20, 20, 20, 255), 7, cv2.LINE_AA)
    elif kind == "mask":
        img = np.zeros((190, 300, 4), np.uint8)
        pts = np.array([[30, 30], [150, 5], [270, 30], [280, 140], [150, 185], [20, 140]], np.int32)
        cv2.fillPoly(img, [pts], (225, 190, 120, 255), cv2.LINE_AA)
        for y in (60, 95, 130):  # pleats
            cv2.line(img, (35, y), (265, y), (190, 160, 100, 255), 3, cv2.LINE_AA)
    elif kind == "mic":
        img = np.zeros((260, 90, 4), np.uint8)
        cv2.rectangle(img, (30, 70), (60, 255), (30, 30, 30, 255), -1)
        cv2.circle(img, (45, 45), 40, (170, 170, 170, 255), -1, cv2.LINE_AA)
    elif kind == "hand":
        img = np.zeros((220, 170, 4), np.uint8)
        cv2.ellipse(img, (85, 140), (70, 75), 0, 0, 360, (140, 170, 220, 255), -1, cv2.LINE_AA)
        for i, x in enumerate((35, 65, 95, 125)):
            cv2.rectangle(img, (x - 12, int(15 + 8 * abs(i - 1.5))), (x + 12, 120), (140, 170, 220, 255), -1)
    else:
        img = np.zeros((120, 120, 4), np.uint8)
        cv2.circle(img, (60, 60), 50, (60, 160, 60, 255), -1, cv2.LINE_AA)
    return img


def write(folder: Path, name: str, kind: str) -> Path:
    path = folder / name
    cv2.imwrite(str(path), draw_cutout(kind))
    return path


def gray(size: int = 112) -> np.ndarray:
    return np.full((size, size, 3), 128, np.uint8)  # no face to find: placed on the template


def covered(mask: np.ndarray, point) -> bool:
    x, y = (int(round(float(c))) for c in point)
    return bool(mask[y - 1 : y + 2, x - 1 : x + 2].all())


def place_on(folder: Path, file: str, seed: int = 0, face: np.ndarray | None = None, **kw):
    occ = RealOccluder(str(folder), file=file, **kw)
    return occ.occlude(gray() if face is None else face, item_rng(seed, 0, "second"))


# --------------------------------------------------------------------------- refusing


def test_a_folder_with_an_object_of_unknown_place_is_refused_naming_it(tmp_path):
    write(tmp_path, "cap_red.png", "cap")
    write(tmp_path, "sunglasses1.png", "sunglasses")
    write(tmp_path, "thing.png", "thing")
    write(tmp_path, "blob-2.png", "thing")
    with pytest.raises(DataError) as info:
        OCCLUDERS.create(f"real:{tmp_path}")
    message = str(info.value)
    assert "no placement for blob-2.png, thing.png" in message
    assert "cap_red" not in message.split("—")[0] and "sunglasses1" not in message.split("—")[0]
    assert '"region": "eyes"' in message and "<image stem>.json" in message  # how to fix it
    assert "cap → forehead" in message and "region=NAME" in message


def test_only_the_cutouts_in_use_need_a_place(tmp_path):
    write(tmp_path, "cap.png", "cap")
    write(tmp_path, "thing.png", "thing")
    occ = RealOccluder(str(tmp_path), file="cap.png")  # thing.png is not drawn: no need to place it
    assert [c.file for c in occ.cutouts] == ["cap.png"]


# ---------------------------------------------------------------------- name inference


@pytest.mark.parametrize("name, region", [
    ("cap_red.png", "forehead"), ("RedCap.png", "forehead"), ("baseball-cap2.webp", "forehead"),
    ("hat.png", "forehead"), ("HELMET_01.png", "forehead"),
    ("sunglasses1.png", "eyes"), ("glasses.png", "eyes"), ("ski goggles.png", "eyes"), ("sunglass.png", "eyes"),
    ("mask_blue.png", "lower_face"), ("KN95.png", "lower_face"), ("surgical_green.png", "lower_face"),
    ("scarves.png", "lower_face"), ("n95_left.png", "lower_face"),
    ("mic.png", "before_mouth"), ("microphone_black.png", "before_mouth"), ("mug-2.png", "before_mouth"),
    ("coffeeCup.png", "before_mouth"),
    ("hand.png", "hand"), ("gloves_red.png", "hand"),
    # no kind, or a kind only inside another word, or two kinds
    ("thing.png", None), ("capybara.png", None), ("glassware.png", None), ("masked.png", None),
    ("cloth.png", None), ("mask_and_cap.png", None),
])
def test_the_kind_is_read_from_whole_words_of_the_name(name, region):
    assert kind_of(name) == region


def test_every_kind_names_a_region():
    assert set(KINDS) <= {*PLACES, "hand"}
    words = [w for ws in KINDS.values() for w in ws]
    assert len(words) == len(set(words))  # no word in two kinds


# ---------------------------------------------------------------- where each kind lands


def test_each_kind_lands_where_it_belongs(tmp_path):
    for name, kind in (("cap_red.png", "cap"), ("sunglasses1.png", "sunglasses"), ("mask_blue.png", "mask"),
                       ("mic.png", "mic")):
        write(tmp_path, name, kind)
    eyes, nose, mouth = (LM[0] + LM[1]) / 2, LM[2], (LM[3] + LM[4]) / 2
    for seed in range(6):
        cap = place_on(tmp_path, "cap_red.png", seed)
        assert cap.record["placement"] == "name" and cap.record["region"] == "forehead"
        assert cap.record["bbox"][3] <= eyes[1] - 6 and cap.record["bbox"][1] == 0  # above the eyes, crown cut
        assert covered(cap.mask, (eyes[0], eyes[1] - 20)) and not cap.mask[int(LM[0, 1]):].any()
        glasses = place_on(tmp_path, "sunglasses1.png", seed)
        assert glasses.record["region"] == "eyes"
        assert covered(glasses.mask, LM[0]) and covered(glasses.mask, LM[1])
        assert not glasses.mask[int(nose[1]):].any()
        mask = place_on(tmp_path, "mask_blue.png", seed)
        assert mask.record["region"] == "lower_face"
        assert covered(mask.mask, mouth) and covered(mask.mask, nose + (0, 4))
        assert not mask.mask[: int(eyes[1]) + 4].any()
        mic = place_on(tmp_path, "mic.png", seed)
        assert mic.record["region"] == "before_mouth"
        assert covered(mic.mask, mouth) and not mic.mask[: int(nose[1])].any()


def test_a_hand_goes_over_the_mouth_or_one_eye(tmp_path):
    write(tmp_path, "hand.png", "hand")
    seen = set()
    for seed in range(24):
        occ = place_on(tmp_path, "hand.png", seed)
        target = occ.record["region"]
        seen.add(target)
        point = {"hand:mouth": (LM[3] + LM[4]) / 2, "hand:left_eye": LM[0], "hand:right_eye": LM[1]}[target]
        assert covered(occ.mask, point), (seed, target)
    assert seen == set(HAND_TARGETS)


# ------------------------------------------------------------------ sidecar, option, cfg


def test_a_sidecar_places_a_file_and_wins_over_the_name(tmp_path):
    write(tmp_path, "thing.png", "thing")
    write(tmp_path, "cap.png", "cap")
    (tmp_path / "thing.json").write_text(json.dumps({"region": "eyes"}))
    (tmp_path / "cap.json").write_text(json.dumps({"region": "lower_face", "scale": 0.8, "offset": [0, 4]}))
    occ = RealOccluder(str(tmp_path), scale_jitter=0, shift_jitter=0)
    assert occ.params()["placements"] == {"cap.png": "lower_face", "thing.png": "eyes"}
    thing = place_on(tmp_path, "thing.png", scale_jitter=0, shift_jitter=0)
    assert thing.record["placement"] == "sidecar" and covered(thing.mask, (LM[0] + LM[1]) / 2)
    cap = place_on(tmp_path, "cap.png", scale_jitter=0, shift_jitter=0)
    assert cap.record["placement"] == "sidecar" and cap.record["region"] == "lower_face"
    plain = place_on(tmp_path, "cap.png", scale_jitter=0, shift_jitter=0, region="lower_face")
    assert plain.record["placement"] == "sidecar"  # a file's own sidecar wins over the folder's option
    (tmp_path / "cap.json").unlink()
    plain = place_on(tmp_path, "cap.png", scale_jitter=0, shift_jitter=0, region="lower_face")
    assert plain.record["placement"] == "option"
    # scale 0.8 and 4 px lower: a smaller box, its top further down
    assert cap.mask.sum() < 0.8 * plain.mask.sum() and cap.record["bbox"][1] >= plain.record["bbox"][1] + 3


def test_the_region_option_wins_over_the_name(tmp_path):
    write(tmp_path, "cap.png", "cap")
    occ = OCCLUDERS.create(f"real:{tmp_path}:region=twoeyes")
    result = occ.occlude(gray(), item_rng(0, 0, "second"))
    assert result.record["placement"] == "option" and result.record["region"] == "twoeyes"
    assert covered(result.mask, LM[0]) and covered(result.mask, LM[1])
    with pytest.raises(ValueError, match="region must be one of"):
        OCCLUDERS.create(f"real:{tmp_path}:region=shoulders")


def test_masks_cfg_anchors_win_over_sidecar_and_name(tmp_path):
    write(tmp_path, "cap.png", "mask")  # a mask badly named "cap", anchored by masks.cfg
    (tmp_path / "cap.json").write_text(json.dumps({"region": "eyes"}))
    anchors = "\n".join(f"mask_{k}: {x}, {y}" for k, (x, y) in zip("abcdef", [(30, 30), (150, 5), (270, 30),
                                                                                (20, 140), (150, 185), (280, 140)]))
    (tmp_path / "masks.cfg").write_text(f"[cap]\ntemplate: cap.png\n{anchors}\n")
    result = place_on(tmp_path, "cap.png")
    assert result.record["placement"] == "cfg" and result.record["anchors_used"] is True
    assert result.record["region"] is None and covered(result.mask, (LM[3] + LM[4]) / 2)


@pytest.mark.parametrize("text, fault", [
    ("{not json", "not a JSON placement"),
    ('["eyes"]', "expected a JSON object"),
    ('{"region": "shoulders"}', "region must be one of"),
    ('{"region": "eyes", "angle": 5}', "unknown key"),
    ('{"region": "eyes", "scale": 0}', "scale must be"),
    ('{"region": "eyes", "offset": [1]}', "offset must be"),
])
def test_a_bad_sidecar_is_refused_naming_it(tmp_path, text, fault):
    write(tmp_path, "thing.png", "thing")
    (tmp_path / "thing.json").write_text(text)
    with pytest.raises(DataError, match=rf"thing\.json: {fault}"):
        RealOccluder(str(tmp_path))


def test_sidecars_are_part_of_the_digest_and_orphans_are_skipped(tmp_path, caplog):
    write(tmp_path, "thing.png", "thing")
    (tmp_path / "thing.json").write_text(json.dumps({"region": "eyes"}))
    (tmp_path / "other.json").write_text("{}")  # no image of that name: not a sidecar
    with caplog.at_level("INFO", logger="recogbench.occlusion.real"):
        first = RealOccluder(str(tmp_path)).params()["digest"]
    assert "other.json" in caplog.text
    (tmp_path / "thing.json").write_text(json.dumps({"region": "forehead"}))
    assert RealOccluder(str(tmp_path)).params()["digest"] != first


# ----------------------------------------------------------------------- on a profile


def test_a_real_cutout_follows_a_profile(tmp_path):
    write(tmp_path, "sunglasses.png", "sunglasses")
    face, lm, head = turned_face(70)
    occ = RealOccluder(str(tmp_path))
    for seed in range(4):
        flat = RealOccluder(str(tmp_path), landmarks="template").occlude(face, item_rng(seed, 0, "second"))
        posed = occ.occlude(face, item_rng(seed, 0, "second"), landmarks=lm)
        assert covered(posed.mask, lm[0])  # the visible eye (the nose points right)
        assert (posed.mask & ~head).sum() < 0.3 * (flat.mask & ~head).sum()
        assert posed.record["landmarks"] == "given" and posed.record["clipped"] is False
    pushed = occ.occlude(face, item_rng(0, 0, "second"), landmarks=LM + (45, 0))
    assert pushed.record["clipped"] is True
