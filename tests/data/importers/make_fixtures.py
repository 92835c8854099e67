"""Tiny fixtures for every import format, written into a folder (used by tests/test_data_importers.py).

Run ``python tests/data/importers/make_fixtures.py OUT_DIR`` to look at them. Every fixture shares
the same three images and the same hand-made annotations, so each importer must produce the same
objects:

- ``img1.png`` 64x48: ship [4, 6, 20, 16] (fine type cargo), ship [40, 30, 60, 44], plane [24, 18, 36, 28]
- ``img2.png`` 32x32: tank [2, 2, 10, 10]
- ``img3.png`` 40x20: no objects (background)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES = {"img1.png": (64, 48), "img2.png": (32, 32), "img3.png": (40, 20)}
OBJECTS = {
    "img1.png": [
        ("ship", "cargo", [4, 6, 20, 16]),
        ("ship", None, [40, 30, 60, 44]),
        ("plane", None, [24, 18, 36, 28]),
    ],
    "img2.png": [("tank", None, [2, 2, 10, 10])],
    "img3.png": [],
}
CLASSES = ["ship", "plane", "tank"]


def write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (w, h) in IMAGES.items():
        Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(folder / name)


def write_coco(path: Path) -> None:
    cats = [{"id": i + 1, "name": c, "supercategory": c} for i, c in enumerate(CLASSES)]
    images, anns = [], []
    for i, (name, (w, h)) in enumerate(IMAGES.items(), 1):
        images.append({"id": i, "file_name": name, "width": w, "height": h})
        for cat, _fine, (x1, y1, x2, y2) in OBJECTS[name]:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": CLASSES.index(cat) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def write_dota(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in IMAGES:
        lines = ["imagesource:synthetic", "gsd:1.5"]
        for cat, _fine, (x1, y1, x2, y2) in OBJECTS[name]:
            lines.append(f"{x1} {y1} {x2} {y1} {x2} {y2} {x1} {y2} {cat} 0")
        (folder / f"{Path(name).stem}.txt").write_text("\n".join(lines) + "\n")


def write_voc(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in IMAGES.items():
        objs = "".join(
            f"<object><name>{cat}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for cat, _fine, (x1, y1, x2, y2) in OBJECTS[name]
        )
        xml = (
            f"<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>1</depth></size>{objs}</annotation>"
        )
        (folder / f"{Path(name).stem}.xml").write_text(xml)


def write_yolo(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for name, (w, h) in IMAGES.items():
        lines = []
        for cat, _fine, (x1, y1, x2, y2) in OBJECTS[name]:
            lines.append(
                f"{CLASSES.index(cat)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            )
        (folder / f"{Path(name).stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def write_sarlang(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Caption-training.csv").write_text(
        "image,caption\n"
        "img1.png,Two ships and a plane near a harbor.\n"
        'img1.png,"The scene shows two ships on the water. A plane is parked in the center. The ships are '
        'located on the left and right sides."\n'
    )
    (folder / "Caption_test1.csv").write_text("img2.png,A storage tank.\n")
    (folder / "SARVQA1_train.csv").write_text(
        "image_name,question,answer,type\n"
        "img1.png,How many ships are visible in the image?,2,counting\n"
        "img1.png,Are there planes in the image?,yes,identification\n"
    )


def write_geovl(path: Path) -> None:
    entries = [
        {
            "image_id": "img1",
            "Terrain": "flat coastal plain",
            "Functionality": "port area",
            "Distribution": "scattered vessels",
            "Layout": "linear quay",
            "Boundary": "sharp land-water edge",
            "Buildings": "few sheds",
            "Roads": "one access road",
            "Water": "large water body on the right",
        },
        {
            "image_id": "img3.png",
            "Terrain": "hilly",
            "Functionality": "woodland",
            "Distribution": "uniform",
            "Layout": "irregular",
            "Boundary": "none",
            "Building": "none",
            "Road": "none",
            "Water": "none",
        },
    ]
    path.write_text(json.dumps(entries, indent=1))


def write_llava(path: Path) -> None:
    rows = [
        {
            "id": "a",
            "image": "img1.png",
            "conversations": [
                {"from": "human", "value": "<image>\nHow many ships are there?"},
                {"from": "gpt", "value": "2"},
                {"from": "human", "value": "Where is the plane?"},
                {"from": "gpt", "value": "In the center."},
            ],
        },
        {
            "id": "b",
            "image": "img2.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is this?"},
                {"from": "gpt", "value": "A tank."},
            ],
        },
    ]
    path.write_text(json.dumps(rows))


def write_swift(path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": "<image>How many ships are there?"},
                {"role": "assistant", "content": "2"},
            ],
            "images": ["img1.png"],
        },
        {
            "messages": [
                {"role": "system", "content": "You are a SAR analyst."},
                {"role": "user", "content": "<image>\nWhat is this?"},
                {"role": "assistant", "content": "A tank."},
            ],
            "images": ["img2.png"],
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def make_all(root: Path) -> dict[str, Path]:
    """Write every fixture under ``root``; returns format -> SRC path (images are in ``root/images``)."""
    root.mkdir(parents=True, exist_ok=True)
    write_images(root / "images")
    write_coco(root / "coco.json")
    write_dota(root / "dota")
    write_voc(root / "voc")
    write_yolo(root / "yolo")
    write_sarlang(root / "sarlang")
    write_geovl(root / "geovl.json")
    write_llava(root / "llava.json")
    write_swift(root / "swift.jsonl")
    return {
        "coco": root / "coco.json",
        "dota": root / "dota",
        "voc": root / "voc",
        "yolo": root / "yolo",
        "sarlang": root / "sarlang",
        "geovl": root / "geovl.json",
        "llava": root / "llava.json",
        "swift": root / "swift.jsonl",
    }


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
    for fmt, src in make_all(out).items():
        print(fmt, src)
