"""The ``geo`` extension: priors for uploaded images, and answers' boxes in map coordinates.

Prior (first image of a request, the SAR image — priors are georeferenced to it):

1. ``geo.bbox`` ``[W, S, E, N]`` given → the anchor grid over that box, north-up box mapping
   (as ``sarvlm ask --bbox``); else a georeferenced GeoTIFF's own footprint through its CRS +
   transform or GCPs; else no prior (``reason`` says why).
2. Year: ``geo.year``; else the GeoTIFF's acquisition-date tag; else the latest year the source
   covers at the grid nodes. The source's nearest available year is used (``year`` vs
   ``year_requested`` in the answer).
3. :func:`sarvlm.priors.sample_grid` from the server's ``--priors-source`` (any ``sarvlm priors``
   source), one sample at a time (sources hold open datasets).

Boxes: :func:`sarvlm.tasks.parsing.parse_boxes` reads boxes from the answer in the model's
coordinate convention and maps them to original image pixels; with a georeference (the file's,
or the request's ``geo.bbox``) each box also becomes a lon/lat polygon, returned as GeoJSON.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.record import GeoRef
from sarvlm.serve.images import DecodedImage
from sarvlm.serve.openai_schema import GeoSpec


@dataclass
class PriorOutcome:
    """The prior grid given to the model (or None) and what the response says about it."""

    grid: Any | None
    info: dict[str, Any] = field(default_factory=dict)


class PriorSampler:
    """Samples prior grids for uploaded images from one opened source (thread-safe)."""

    def __init__(self, spec: str | None, settings: Any) -> None:
        self.spec = spec
        self.settings = settings
        self._lock = threading.Lock()
        self.source = None
        if spec:
            from sarvlm.priors import open_source

            self.source = open_source(spec)

    def close(self) -> None:
        if self.source is not None and hasattr(self.source, "close"):
            self.source.close()

    def sample(self, image: DecodedImage | None, geo: GeoSpec | None) -> PriorOutcome:
        """The prior of ``image`` for the request's ``geo`` (see module docs); never raises for a
        missing ingredient (the answer says ``used: false`` and why), only for bad ``geo`` values."""
        from sarvlm.priors.anchor_grid import anchor_nodes, check_bbox, footprint_from_georef

        def skip(reason: str, **more: Any) -> PriorOutcome:
            return PriorOutcome(None, {"used": False, "reason": reason, **more})

        bbox = check_bbox(geo.bbox, "geo.bbox") if geo is not None and geo.bbox is not None else None
        if image is None:
            return skip("no image in the request")
        if self.settings.fusion == "none":
            return skip("the model has no prior fusion (fusion: none)")
        if geo is not None and not geo.prior:
            return skip("disabled by the request (geo.prior: false)")
        footprint = "request"
        if bbox is None:
            if image.georef is None:
                return skip("the image is not georeferenced and the request has no geo.bbox")
            try:
                bbox = footprint_from_georef(image.georef, image.width, image.height, "image georeference")
            except SarvlmError as exc:
                return skip(str(exc))
            footprint = "image"
        if self.source is None:
            return skip("the server has no prior source (start it with --priors-source SPEC)", bbox=list(bbox))
        n_lon, n_lat = self.settings.prior_grid
        lon, lat = anchor_nodes(bbox, n_lon, n_lat)
        year = geo.year if geo is not None and geo.year is not None else image.meta.acquisition_year
        year_from = "request" if geo is not None and geo.year is not None else "image tag"
        from sarvlm.priors import sample_grid

        with self._lock:
            if year is None:
                years = self.source.years_covering(lon, lat)
                if not years:
                    return skip("the prior source has no year covering the footprint", bbox=list(bbox))
                year, year_from = max(years), "latest available"
            grid = sample_grid(
                self.source,
                bbox if footprint == "request" else None,
                int(year),
                n_lon,
                n_lat,
                image.width,
                image.height,
                image.georef if footprint == "image" else None,
            )
        info = {
            "used": grid.num_valid > 0,
            "year": grid.year,
            "year_requested": grid.year_requested,
            "year_from": year_from,
            "valid_nodes": grid.num_valid,
            "nodes": grid.size,
            "grid": [n_lon, n_lat],
            "bbox": [float(v) for v in bbox],
            "footprint_from": footprint,
        }
        if grid.num_valid == 0:
            info["reason"] = "the prior source has no valid embedding at the footprint for that year"
        return PriorOutcome(grid if grid.num_valid > 0 else None, info)


def answer_georef(image: DecodedImage | None, geo: GeoSpec | None) -> tuple[GeoRef | None, str | None]:
    """The georeference boxes are mapped with: the request's box (north-up) wins over the file's,
    as for the prior; ``(None, None)`` when there is neither."""
    if geo is not None and geo.bbox is not None:
        from sarvlm.priors.anchor_grid import check_bbox

        return GeoRef(bbox_wgs84=list(check_bbox(geo.bbox, "geo.bbox"))), "request"
    if image is not None and image.georef is not None:
        return image.georef, "image"
    return None, None


def box_polygon(georef: GeoRef, box: list[float], width: int, height: int) -> list[list[float]]:
    """Closed lon/lat ring ``[[lon, lat], ...]`` of a pixel box's corners (x1,y1)→(x2,y1)→(x2,y2)→(x1,y2)."""
    from sarvlm.io.georef import pixel_to_lonlat

    x1, y1, x2, y2 = box
    cols = np.array([x1, x2, x2, x1, x1], dtype=np.float64)
    rows = np.array([y1, y1, y2, y2, y1], dtype=np.float64)
    lon, lat = pixel_to_lonlat(georef, cols, rows, width=width, height=height)
    return [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat)]


def footprint_polygon(georef: GeoRef, width: int, height: int) -> list[list[float]]:
    """The image outline as a closed lon/lat ring (corners and edge midpoints)."""
    from sarvlm.io.georef import pixel_to_lonlat

    t = np.linspace(0.0, 1.0, 5)[:-1]
    cols = np.concatenate([t * width, np.full_like(t, width), (1 - t) * width, np.zeros_like(t), [0.0]])
    rows = np.concatenate([np.zeros_like(t), t * height, np.full_like(t, height), (1 - t) * height, [0.0]])
    lon, lat = pixel_to_lonlat(georef, cols, rows, width=width, height=height)
    return [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat)]


def boxes_extension(text: str, coords: str | None, image: DecodedImage | None, geo: GeoSpec | None) -> dict[str, Any]:
    """``{"boxes": [{"pixel": [x1,y1,x2,y2], "lonlat": ring|None}], "geojson": FeatureCollection|None,
    "georef": "image"|"request"|None}`` for the boxes found in an answer about ``image``."""
    if image is None:
        return {"boxes": [], "geojson": None, "georef": None}
    from sarvlm.tasks.parsing import parse_boxes

    try:
        parsed = parse_boxes(text, coords, image.width, image.height) or []
    except Exception:  # noqa: BLE001 - a malformed answer yields no boxes, never an error
        parsed = []
    try:
        georef, georef_from = answer_georef(image, geo)
    except InputError:
        georef, georef_from = None, None
    boxes, features = [], []
    for i, box in enumerate(parsed):
        if box[2] <= box[0] or box[3] <= box[1]:
            continue  # degenerate after clipping to the image
        pixel = [round(float(v), 2) for v in box]
        ring = box_polygon(georef, pixel, image.width, image.height) if georef is not None else None
        boxes.append({"index": i, "pixel": pixel, "lonlat": ring})
        if ring is not None:
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {"index": i, "pixel_box": pixel},
                }
            )
    geojson = {"type": "FeatureCollection", "features": features} if georef is not None else None
    return {"boxes": boxes, "geojson": geojson, "georef": georef_from}
