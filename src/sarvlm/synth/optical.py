"""A paired optical (RGB) rendering of the same scene, as a co-registered PNG.

Same layout and targets as the SAR scene, seen by a nadir optical camera in the afternoon:

- water dark blue-green with turbidity; forest dark green with crown texture;
- farmland parcels coloured by the crop they carry that year (wheat, maize, rice, fallow —
  the same crops the embedding field encodes); grassland a more uniform meadow green, so that
  optical, unlike SAR, separates them;
- urban: roofs per building (tiles, concrete, metal), asphalt streets, building shadows cast
  to the north-west; bare ground tan; pavement grey;
- targets painted with their parts' colours (SAR-only artefacts such as bridge multipath
  ghosts are not drawn), with white foam along the turbulent wakes of moving ships; the sky
  is clear.

A light blur stands in for the camera's point-spread function.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sarvlm.synth.embedding_field import crop_in_cell
from sarvlm.synth.landcover import BARE, FARMLAND, FOREST, GRASSLAND, URBAN, WATER, Layout
from sarvlm.synth.noise import smooth_noise
from sarvlm.synth.shapes import paint, polygon_mask
from sarvlm.synth.targets import PlacedTarget

CROP_RGB = np.array(
    [(196, 170, 92), (96, 146, 58), (120, 160, 95), (150, 118, 86)], dtype=np.float32
)  # wheat, maize, rice, fallow
ROOF_RGB = np.array([(172, 92, 72), (192, 190, 184), (128, 130, 136), (158, 150, 160)], dtype=np.float32)


def render_optical(
    layout: Layout, targets: list[PlacedTarget], year: int, cell_key: int, rng: np.random.Generator
) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the scene window ``layout`` with its ``targets``.

    ``cell_key`` is the key the embedding field uses for the cell, so both agree on the crops.
    """
    cls = layout.classes
    h, w = cls.shape
    res = layout.resolution_m
    img = np.zeros((h, w, 3), dtype=np.float32)
    tex = smooth_noise(rng, (h, w), max(6.0 / res, 1.0))[..., None]
    broad = smooth_noise(rng, (h, w), 200.0 / res)[..., None]

    def fill(mask: np.ndarray, rgb: tuple[int, int, int], jitter: float, field: np.ndarray) -> None:
        img[mask] = np.asarray(rgb, dtype=np.float32) + jitter * field[mask]

    fill(cls == WATER, (28, 62, 78), 8.0, broad)
    fill(cls == FOREST, (42, 78, 44), 14.0, tex)
    fill(cls == GRASSLAND, (108, 150, 78), 5.0, broad)

    farm = cls == FARMLAND
    if farm.any():
        crops = crop_in_cell(layout, cell_key, year)[farm]
        img[farm] = CROP_RGB[crops] + 6.0 * tex[farm]

    bare = cls == BARE
    if bare.any():
        img[bare] = np.array((168, 150, 120), dtype=np.float32) + 8.0 * broad[bare]
    if layout.pavement.any():
        img[layout.pavement] = (104, 104, 106)

    urban = cls == URBAN
    if urban.any():
        img[urban] = np.array((128, 124, 116), dtype=np.float32) + 6.0 * tex[urban]
        img[layout.roads] = (78, 78, 80)
        bl = layout.buildings > 0
        if bl.any():
            roof = ROOF_RGB[layout.buildings[bl] % len(ROOF_RGB)]
            img[bl] = roof
            # Shadows to the north-west (sun in the south-east), a few metres long.
            k = max(1, int(round(6.0 / res)))
            shadow = np.zeros_like(bl)
            shadow[:-k, :-k] = bl[k:, k:]
            shadow &= ~bl & urban
            img[shadow] *= 0.55

    # Foam of the turbulent wakes of moving ships (on water only), under the ships themselves.
    for t in targets:
        for poly, part in t.wake:
            if part == "turbulent":
                sub, (r0, c0) = polygon_mask(poly, h, w)
                if sub.size:
                    win = (slice(r0, r0 + sub.shape[0]), slice(c0, c0 + sub.shape[1]))
                    sel = sub & (cls[win] == WATER)
                    img[win][sel] = 0.65 * img[win][sel] + 0.35 * 235.0
    for t in targets:
        for poly, _db, rgb, in_box in t.parts:
            if in_box:
                paint(img, poly, rgb)

    img = ndimage.gaussian_filter(img, sigma=(0.6, 0.6, 0))
    img += rng.normal(0.0, 2.0, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
