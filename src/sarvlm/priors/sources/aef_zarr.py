"""``aef-zarr:PATH`` — AlphaEarth embeddings from the zarr stores ``aef-download`` writes.

``aef-download`` cuts a box out of Google's global EPSG:4326 mosaic and writes one zarr group
per year (``{prefix}_{year}.zarr``) holding

- ``embeddings[band, y, x]``: int8 codes (NoData −128) or, with ``--dequantize``, float32
  values (NoData NaN);
- ``x`` (longitudes) and ``y`` (latitudes): 1-D coordinate arrays of the pixels' **top-left
  corners** (``x0 + xres·col``, ``y0 + yres·row`` of the mosaic's affine), regularly spaced;
- an optional ``mask`` (uint8, 1 = inside the requested boundary);
- group attributes including ``year`` and ``dequantized``.

``PATH`` is one such group or a directory holding several (one per year). The year comes from
the ``year`` attribute, else a ``_YYYY.zarr`` name suffix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import numpy as np

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.io.aef_layout import AEF_NODATA, dequantize_aef

_YEAR_SUFFIX = re.compile(r"(\d{4})\.zarr$")


class _YearStore:
    """One year's group: lazily indexed embeddings plus its regular lon/lat grid."""

    def __init__(self, path: Path, group):
        self.path = path
        try:
            self.emb = group["embeddings"]
            x = np.asarray(group["x"][:], dtype=np.float64)
            y = np.asarray(group["y"][:], dtype=np.float64)
        except KeyError as exc:
            raise InputError(
                f"{path}: missing array {exc} (expected embeddings, x, y as aef-download writes)"
            ) from None
        if self.emb.ndim != 3 or self.emb.shape[1:] != (y.size, x.size):
            raise InputError(
                f"{path}: embeddings shape {self.emb.shape} does not match (band, len(y)={y.size}, len(x)={x.size})"
            )
        if x.size < 2 or y.size < 2:
            raise InputError(f"{path}: needs at least 2×2 pixels to know the pixel size")
        self.x0, self.dx = x[0], (x[-1] - x[0]) / (x.size - 1)
        self.y0, self.dy = y[0], (y[-1] - y[0]) / (y.size - 1)
        self.width, self.height = x.size, y.size
        self.mask = group["mask"] if "mask" in group else None
        self.is_int = np.dtype(self.emb.dtype) == np.int8
        if not self.is_int and np.dtype(self.emb.dtype).kind != "f":
            raise InputError(f"{path}: embeddings dtype {self.emb.dtype} is neither int8 codes nor float")
        xs = (self.x0, self.x0 + self.dx * self.width)
        ys = (self.y0, self.y0 + self.dy * self.height)
        self.bounds = (min(xs), min(ys), max(xs), max(ys))

    def pixel(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        col = np.floor((lon - self.x0) / self.dx).astype(np.int64)
        row = np.floor((lat - self.y0) / self.dy).astype(np.int64)
        ok = (row >= 0) & (row < self.height) & (col >= 0) & (col < self.width)
        return row, col, ok


class AefZarrSource:
    """Embedding source over ``aef-download`` zarr stores."""

    def __init__(self, path: str | Path):
        import zarr

        self.path = Path(path)
        self.spec = f"aef-zarr:{self.path}"
        if not self.path.exists():
            raise NotFoundError(f"{self.path}: no such zarr store or directory (aef-zarr source)")
        candidates = [self.path] if _is_group(self.path) else sorted(p for p in self.path.iterdir() if _is_group(p))
        if not candidates:
            raise InputError(f"{self.path}: no zarr group with an 'embeddings' array found")
        self._stores: dict[int, _YearStore] = {}
        dims = set()
        for p in candidates:
            try:
                group = zarr.open_group(str(p), mode="r")
            except Exception as exc:  # noqa: BLE001 - any zarr decoding problem is the store's fault
                raise InputError(f"{p}: cannot open zarr group ({exc})") from None
            if "embeddings" not in group:
                continue
            year = group.attrs.get("year")
            if year is None:
                m = _YEAR_SUFFIX.search(p.name)
                if not m:
                    raise InputError(f"{p}: no 'year' attribute and no _YYYY.zarr suffix: cannot tell the year")
                year = int(m.group(1))
            year = int(cast(Any, year))  # a JSON attribute: int, float or numeric string
            if year in self._stores:
                raise InputError(f"{p}: a second store for year {year} (first: {self._stores[year].path})")
            store = _YearStore(p, group)
            self._stores[year] = store
            dims.add(store.emb.shape[0])
        if not self._stores:
            raise InputError(f"{self.path}: no zarr group with an 'embeddings' array found")
        if len(dims) != 1:
            raise InputError(f"{self.path}: stores disagree on the number of bands {sorted(dims)}")
        self.prior_dim = dims.pop()

    @property
    def years(self) -> list[int]:
        return sorted(self._stores)

    def years_covering(self, lon: np.ndarray, lat: np.ndarray) -> list[int]:
        lon, lat = np.asarray(lon), np.asarray(lat)
        out = []
        for year, st in sorted(self._stores.items()):
            w, s, e, n = st.bounds
            if np.any((lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)):
                out.append(year)
        return out

    def sample(self, lon: np.ndarray, lat: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        n = lon.shape[0]
        vectors = np.zeros((n, self.prior_dim), dtype=np.float32)
        valid = np.zeros(n, dtype=bool)
        st = self._stores.get(int(year)) if year is not None else None
        if st is None or n == 0:
            return vectors, valid
        row, col, ok = st.pixel(lon, lat)
        if not ok.any():
            return vectors, valid
        r, c = row[ok], col[ok]
        r0, r1, c0, c1 = int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1
        # One minimal window read (zarr fetches only the chunks it touches), then a gather.
        win = np.asarray(st.emb[:, r0:r1, c0:c1])
        vals = win[:, r - r0, c - c0].T
        if st.is_int:
            good = ~(vals == AEF_NODATA).any(axis=1)
            dq = np.zeros(vals.shape, dtype=np.float32)
            dq[good] = dequantize_aef(vals[good])
        else:
            dq = vals.astype(np.float32)
            good = np.isfinite(dq).all(axis=1)
            dq[~good] = 0.0
        if st.mask is not None:
            good &= np.asarray(st.mask[r0:r1, c0:c1])[r - r0, c - c0].astype(bool)
        idx = np.flatnonzero(ok)
        vectors[idx[good]] = dq[good]
        valid[idx[good]] = True
        return vectors, valid

    def close(self) -> None:
        self._stores.clear()

    def __enter__(self) -> AefZarrSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_group(path: Path) -> bool:
    return path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists())
