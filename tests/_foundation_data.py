"""A tiny image-text world for the KLIP tests: four scene kinds that differ in backscatter pattern,
each with 8 GEOVL-style fields that follow from the pattern (so they are learnable in a few
hundred steps of a tiny model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sarvlm.core.record import Caption, LandCover, SampleRecord, write_samples
from sarvlm.io.raster import write_raster

KINDS = {
    # kind: (water?, urban?) -> left half / right half backscatter in dB
    "coast": {
        "Terrain": "water with grassland",
        "Water": "Open water covers a large part of the scene",
        "Buildings": "There are no buildings",
        "Functionality": "The area is a coastal zone",
    },
    "port": {
        "Terrain": "water with urban",
        "Water": "Open water covers a large part of the scene",
        "Buildings": "Dense buildings cover much of the scene",
        "Functionality": "The area serves as a port",
    },
    "rural": {
        "Terrain": "grassland with forest",
        "Water": "There is no open water",
        "Buildings": "There are no buildings",
        "Functionality": "The area is used for agriculture",
    },
    "urban": {
        "Terrain": "urban with grassland",
        "Water": "There is no open water",
        "Buildings": "Dense buildings cover much of the scene",
        "Functionality": "The area is a town",
    },
}
_DB = {"coast": (-25, -10), "port": (-25, 5), "rural": (-10, -12), "urban": (5, -10)}
_CLASSES = {0: "water", 1: "urban", 2: "grassland"}
_MASK = {"coast": (0, 2), "port": (0, 1), "rural": (2, 2), "urban": (1, 2)}
_CLASSES = {0: "water", 1: "urban", 2: "grassland"}
_MASK = {"coast": (0, 2), "port": (0, 1), "rural": (2, 2), "urban": (1, 2)}


def fields_for(kind: str) -> dict[str, str]:
    f = KINDS[kind]
    return {
        "Terrain": f"The terrain is classified as mainly {f['Terrain']}",
        "Functionality": f["Functionality"],
        "Distribution": "No targets are present",
        "Layout": "The scene has no target layout",
        "Boundary": "A coastline separates water from land"
        if "water" in f["Terrain"]
        else "There is no land-water boundary",
        "Buildings": f["Buildings"],
        "Roads": "Streets form a grid" if "urban" in f["Terrain"] else "There are no paved roads",
        "Water": f["Water"],
    }


def make_world(
    root: Path, n: int = 16, size: int = 32, seed: int = 0, planted: dict[int, dict[str, str]] | None = None
) -> Path:
    """Write ``n`` records (kinds in rotation) under ``root``; ``planted[i]`` overrides fields of record i."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    recs = []
    kinds = list(KINDS)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        left, right = _DB[kind]
        db = np.empty((size, size))
        db[:, : size // 2], db[:, size // 2 :] = left, right
        img = (10 ** (db / 10) * rng.gamma(4.0, 1 / 4.0, (size, size))).astype(np.float32)
        write_raster(root / "images" / f"s{i:03d}.tif", img)
        mask = np.empty((size, size), dtype=np.uint8)
        mask[:, : size // 2], mask[:, size // 2 :] = _MASK[kind]
        write_raster(root / "masks" / f"s{i:03d}.png", mask)
        fields = fields_for(kind)
        fields.update((planted or {}).get(i, {}))
        text = "\n".join(f"{k}: {v}." for k, v in fields.items())
        recs.append(
            SampleRecord(
                id=f"s{i:03d}",
                image=f"images/s{i:03d}.tif",
                width=size,
                height=size,
                captions=[Caption(text=text, style="structured", fields=fields)],
                meta={"kind": kind},
                landcover=LandCover(mask=f"masks/s{i:03d}.png", classes=_CLASSES),
            )
        )
    write_samples(root / "samples.jsonl", recs)
    return root / "samples.jsonl"
