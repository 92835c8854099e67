"""``earthengine[:PROJECT]`` — AlphaEarth embeddings served by Google Earth Engine.

Reads ``GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL`` (bands ``A00``–``A63``, float values, one image
per UTM zone and year) by ``Image.sampleRegions`` over the anchor nodes: the year's images are
mosaicked, each node is a point feature carrying its index, and Earth Engine returns the band
values at the 10 m pixel under each point. Nodes that come back without values (masked pixels,
no coverage) are invalid.

This source is an optional extra: ``pip install -e '.[earthengine]'`` (``earthengine-api``).
Authenticate once per machine with ``earthengine authenticate`` (or ``ee.Authenticate()``),
or use a service account (``GOOGLE_APPLICATION_CREDENTIALS`` pointing at its JSON key); the
Cloud project comes from ``earthengine:PROJECT`` or ``EARTHENGINE_PROJECT``/
``GOOGLE_CLOUD_PROJECT``. One request is made per sample, so for a whole dataset prefer
exporting tiles and using ``aef-cog:`` (the cache makes either one-off).
"""

from __future__ import annotations

import datetime as _dt
import os

import numpy as np

from sarvlm.core.errors import InputError, MissingDependency
from sarvlm.io.aef_layout import AEF_BAND_NAMES

COLLECTION_ID = "GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL"
INSTALL_HINT = "pip install -e '.[earthengine]'"


def _import_ee():
    try:
        import ee
    except ImportError:
        raise MissingDependency("earthengine-api", "earthengine", "the earthengine prior source") from None
    return ee


class EarthEngineSource:
    """Embedding source over the Earth Engine Satellite Embedding collection."""

    def __init__(self, project: str | None = None, *, scale: float = 10.0, collection: str = COLLECTION_ID):
        ee = _import_ee()
        self._ee = ee
        self.project = project or os.environ.get("EARTHENGINE_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
        self.spec = "earthengine" + (f":{self.project}" if self.project else "")
        self.prior_dim = len(AEF_BAND_NAMES)
        self.scale = float(scale)
        try:
            ee.Initialize(project=self.project) if self.project else ee.Initialize()
        except Exception as exc:  # noqa: BLE001 - credentials/project problems have many exception types
            raise InputError(
                f"earthengine: cannot initialise ({_one_line(exc)}); authenticate with `earthengine authenticate` "
                "and name a Cloud project (earthengine:PROJECT or EARTHENGINE_PROJECT)"
            ) from None
        self.collection = ee.ImageCollection(collection)
        starts = self._get_info(self.collection.aggregate_array("system:time_start"), "list the collection's years")
        self._years = sorted({_dt.datetime.fromtimestamp(int(ms) / 1000, tz=_dt.UTC).year for ms in starts})

    @property
    def years(self) -> list[int]:
        return list(self._years)

    def years_covering(self, lon: np.ndarray, lat: np.ndarray) -> list[int]:
        # The product is global (land and coastal waters); per-point gaps show up as invalid nodes.
        return list(self._years)

    def sample(self, lon: np.ndarray, lat: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
        ee = self._ee
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        n = lon.shape[0]
        vectors = np.zeros((n, self.prior_dim), dtype=np.float32)
        valid = np.zeros(n, dtype=bool)
        if year is None or int(year) not in self._years or n == 0:
            return vectors, valid
        year = int(year)
        image = self.collection.filterDate(f"{year}-01-01", f"{year + 1}-01-01").mosaic().select(list(AEF_BAND_NAMES))
        points = ee.FeatureCollection(
            [
                ee.Feature(ee.Geometry.Point([float(lo), float(la)]), {"node": i})
                for i, (lo, la) in enumerate(zip(lon, lat, strict=True))
            ]
        )
        sampled = image.sampleRegions(collection=points, properties=["node"], scale=self.scale, geometries=False)
        result = self._get_info(sampled, f"sample {n} nodes for {year}")
        for feature in result.get("features", []):
            props = feature.get("properties", {})
            i = props.get("node")
            if i is None or not 0 <= int(i) < n:
                continue
            try:
                vec = np.array([props[b] for b in AEF_BAND_NAMES], dtype=np.float32)
            except (KeyError, TypeError, ValueError):
                continue  # a partially masked pixel: treat as NoData
            if np.all(np.isfinite(vec)):
                vectors[int(i)] = vec
                valid[int(i)] = True
        return vectors, valid

    def close(self) -> None:
        """Nothing to release (requests are stateless)."""

    def _get_info(self, obj, what: str):
        try:
            return obj.getInfo()
        except Exception as exc:  # noqa: BLE001 - ee.EEException, HTTP errors, quota errors
            raise InputError(f"earthengine: cannot {what} ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
