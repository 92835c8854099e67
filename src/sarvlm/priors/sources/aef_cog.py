"""``aef-cog:DIR`` — AlphaEarth embeddings from local tiles in the official COG layout.

How a batch of nodes is sampled (the efficient path the benchmark measures):

1. tile selection: an STRtree per year over the index's WGS84 footprint polygons (clipped to
   the UTM zone, so each point belongs to one zone's tiles) finds candidate tiles per node;
2. per candidate tile (in index path order): node lon/lat → tile CRS with a cached pyproj
   transformer, → fractional row/col through the inverse affine (bottom-up tiles with a
   positive y pixel size work unchanged), nodes outside the raster fall through to the next
   candidate;
3. one minimal window read per tile covering all its nodes, then a numpy gather. When that
   window would exceed ``max_window_pixels`` (a coarse grid over a large footprint), the nodes
   are read in horizontal strips around their rows instead: copying the full window out of
   GDAL costs ~90 ns per pixel (64 bands), so an 8×8 grid over a 240×240 px footprint reads
   5 ms of mostly unused pixels as one window and ~0.5 ms as strips;
4. NoData (−128) masks the node; valid codes are de-quantised with ``sign(q)·(q/127.5)²``.

Open datasets are kept in a small LRU so consecutive samples in one area reuse them.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.io.aef_layout import AEF_BANDS, AEF_NODATA, dequantize_aef, read_aef_index, zone_lonlat_box

MERGE_PIXELS = 8192  # pixels (x 64 bands) whose copy costs about one extra window read call


class AefCogSource:
    """Embedding source over a directory of AEF tiles with an ``aef_index`` file.

    ``missing_tiles``: ``"error"`` (default) fails when the index names tiles the directory
    lacks; ``"skip"`` drops them from the index (a partial local mirror), so their area has
    no coverage. ``block_cache_mb``: size of the decoded-block LRU (0 disables it and reads
    minimal windows/strips only). ``max_window_pixels``: above this a minimal window is split
    into strips (uncached reads).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        missing_tiles: str = "error",
        max_open: int = 64,
        max_window_pixels: int = 64 * 64,
        block_cache_mb: float = 256,
    ):
        import shapely
        from pyproj import CRS
        from pyproj.exceptions import CRSError
        from shapely.geometry import box

        self.root = Path(root)
        if not self.root.is_dir():
            raise NotFoundError(f"{self.root}: no such directory (aef-cog source)")
        if missing_tiles not in ("error", "skip"):
            raise InputError(f"missing_tiles: must be 'error' or 'skip', got {missing_tiles!r}")
        self.spec = f"aef-cog:{self.root}"
        self.prior_dim = AEF_BANDS
        self.max_open = int(max_open)
        self.max_window_pixels = int(max_window_pixels)
        self.block_cache_bytes = int(block_cache_mb * 2**20)
        self._blocks: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._block_bytes = 0
        self.block_reads = 0  # decoded blocks read from disk (for benchmarks/diagnostics)

        index = read_aef_index(self.root)
        exists = np.array([Path(p).is_file() for p in index["local_path"]], dtype=bool)
        if not exists.all():
            first = index["local_path"][int(np.argmin(exists))]
            if missing_tiles == "error":
                raise NotFoundError(
                    f"{first}: tile named by the index is missing ({int((~exists).sum())} of {len(exists)} missing; "
                    "open with missing_tiles='skip' / --missing-tiles skip to treat them as no coverage)"
                )
            index = index[exists].reset_index(drop=True)
        self.missing_tiles_skipped = int((~exists).sum())
        index = index.sort_values("local_path", kind="stable").reset_index(drop=True)

        self._paths: list[Path] = list(index["local_path"])
        self._years = index["year"].to_numpy(dtype=np.int64)
        parsed: dict[str, str] = {}  # a global index has ~10^5 rows but a few hundred CRSs
        self._crs: list[str] = []
        for i, crs in enumerate(index["crs"].astype(str)):
            if crs not in parsed:
                try:
                    parsed[crs] = CRS.from_user_input(crs).to_string()
                except CRSError:
                    raise InputError(
                        f"{self.root}: index row {i} ({self._paths[i].name}): unsupported crs {crs!r}"
                    ) from None
            self._crs.append(parsed[crs])

        geoms = []
        for row in index.itertuples():
            g = row.geometry
            if g is None or g.is_empty:
                # CSV index: the WGS84 box, clipped to the UTM zone where the zone is known.
                w, s, e, n = row.wgs84_west, row.wgs84_south, row.wgs84_east, row.wgs84_north
                g = box(min(w, e), min(s, n), max(w, e), max(s, n))
                zone = str(row.utm_zone)
                if zone[:-1].isdigit() and zone[-1:].upper() in ("N", "S"):
                    zbox = box(*zone_lonlat_box(int(zone[:-1]), zone[-1].upper()))
                    g = zbox.intersection(box(-180, min(s, n), 180, max(s, n))) if w > e else g.intersection(zbox)
            geoms.append(g)
        self._geoms = np.array(geoms, dtype=object)
        self._all_tree = shapely.STRtree(self._geoms) if len(geoms) else None
        self._year_trees: dict[int, tuple[Any, np.ndarray]] = {}  # shapely.STRtree, index rows
        for year in sorted(set(self._years.tolist())):
            rows = np.flatnonzero(self._years == year)
            self._year_trees[int(year)] = (shapely.STRtree(self._geoms[rows]), rows)
        self._datasets: OrderedDict[int, Any] = OrderedDict()  # open rasterio datasets, LRU
        self._transformers: dict[str, object] = {}

    # -- PriorSource -----------------------------------------------------------------

    @property
    def years(self) -> list[int]:
        """All years present in the index."""
        return sorted(self._year_trees)

    def years_covering(self, lon: np.ndarray, lat: np.ndarray) -> list[int]:
        import shapely

        if self._all_tree is None:
            return []
        _, hit = self._all_tree.query(shapely.points(np.asarray(lon), np.asarray(lat)), predicate="intersects")
        return sorted({int(y) for y in self._years[hit]})

    def sample(self, lon: np.ndarray, lat: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
        import shapely

        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        n = lon.shape[0]
        codes = np.full((n, AEF_BANDS), AEF_NODATA, dtype=np.int8)
        entry = self._year_trees.get(int(year)) if year is not None else None
        if entry is not None and n:
            tree, rows = entry
            hit_node, hit_idx = tree.query(shapely.points(lon, lat), predicate="intersects")
            hit_row = rows[hit_idx]
            assigned = np.zeros(n, dtype=bool)
            for row in np.unique(hit_row):  # ascending = index path order
                nodes = hit_node[hit_row == row]
                nodes = nodes[~assigned[nodes]]
                if nodes.size == 0:
                    continue
                ds = self._open(int(row))
                x, y = self._transformer(self._crs[row]).transform(lon[nodes], lat[nodes])
                inv = ~ds.transform
                col = np.floor(inv.a * x + inv.b * y + inv.c).astype(np.int64)
                rr = np.floor(inv.d * x + inv.e * y + inv.f).astype(np.int64)
                ok = (rr >= 0) & (rr < ds.height) & (col >= 0) & (col < ds.width)
                if not ok.any():
                    continue
                nodes, rr, col = nodes[ok], rr[ok], col[ok]
                codes[nodes] = self._gather(int(row), ds, rr, col)
                assigned[nodes] = True
        valid = ~(codes == AEF_NODATA).any(axis=1)
        vectors = np.zeros((n, AEF_BANDS), dtype=np.float32)
        if valid.any():
            vectors[valid] = dequantize_aef(codes[valid])
        return vectors, valid

    def close(self) -> None:
        for ds in self._datasets.values():
            ds.close()
        self._datasets.clear()
        self._blocks.clear()
        self._block_bytes = 0

    def __enter__(self) -> AefCogSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------

    def _transformer(self, crs: str):
        tr = self._transformers.get(crs)
        if tr is None:
            from pyproj import Transformer

            tr = self._transformers[crs] = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        return tr

    def _open(self, row: int):
        ds = self._datasets.get(row)
        if ds is not None:
            self._datasets.move_to_end(row)
            return ds
        import rasterio

        from sarvlm.io.raster import allowed_driver

        path = self._paths[row]
        driver = allowed_driver(path)  # tiles are files too: no VRT/network, allowed signature only
        try:
            ds = rasterio.open(path, driver=driver)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"{path}: cannot open AEF tile ({exc})") from None
        if ds.count != AEF_BANDS:
            ds.close()
            raise InputError(f"{path}: has {ds.count} bands, AEF tiles have {AEF_BANDS}")
        if ds.dtypes[0] != "int8":
            ds.close()
            raise InputError(f"{path}: dtype {ds.dtypes[0]}, AEF tiles are int8")
        self._datasets[row] = ds
        if len(self._datasets) > self.max_open:
            _, old = self._datasets.popitem(last=False)
            old.close()
        return ds

    def _read(self, row: int, ds, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        from rasterio.windows import Window

        try:
            return ds.read(window=Window(c0, r0, c1 - c0, r1 - r0))
        except Exception as exc:  # noqa: BLE001 - corrupt/truncated tiles surface here
            raise InputError(f"{self._paths[row]}: cannot read window rows {r0}:{r1} cols {c0}:{c1} ({exc})") from None

    def _gather(self, row: int, ds, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """int8 codes (k, 64) at pixel (rr, cc) of one tile: from decoded blocks when the
        block cache is on and the file is tiled, else from minimal windows."""
        bh, bw = ds.block_shapes[0]
        if self.block_cache_bytes <= 0 or bh < 16 or bw < 16:
            return self._gather_windows(row, ds, rr, cc)
        out = np.empty((rr.size, AEF_BANDS), dtype=np.int8)
        br, bc = rr // bh, cc // bw
        keys = br * (ds.width // bw + 2) + bc
        for k in np.unique(keys):
            sel = np.flatnonzero(keys == k)
            i, j = int(br[sel[0]]), int(bc[sel[0]])
            block = self._block(row, ds, i, j, bh, bw)
            out[sel] = block[:, rr[sel] - i * bh, cc[sel] - j * bw].T
        return out

    def _block(self, row: int, ds, i: int, j: int, bh: int, bw: int) -> np.ndarray:
        """Decoded block (i, j) of a tile, through the LRU. GDAL decompresses whole blocks for
        any window anyway; keeping the decoded block makes every later node in it a numpy
        gather (SAR datasets are spatially clustered: SRC tiling cuts many chips per scene)."""
        key = (row, i, j)
        block = self._blocks.get(key)
        if block is not None:
            self._blocks.move_to_end(key)
            return block
        r0, c0 = i * bh, j * bw
        block = self._read(row, ds, r0, min(r0 + bh, ds.height), c0, min(c0 + bw, ds.width))
        self.block_reads += 1
        self._blocks[key] = block
        self._block_bytes += block.nbytes
        while self._block_bytes > self.block_cache_bytes and len(self._blocks) > 1:
            _, old = self._blocks.popitem(last=False)
            self._block_bytes -= old.nbytes
        return block

    def _gather_windows(self, row: int, ds, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """int8 codes (k, 64) at pixel (rr, cc) of one tile, without the block cache.

        One minimal window when it is small; otherwise horizontal strips around the node rows
        (rows closer than the merge gap share a strip), each cut to its own column extent. A
        coarse grid over a large footprint then reads ~1/30 of the pixels of the full window.
        """
        r0, r1, c0, c1 = int(rr.min()), int(rr.max()) + 1, int(cc.min()), int(cc.max()) + 1
        if (r1 - r0) * (c1 - c0) <= self.max_window_pixels:
            win = self._read(row, ds, r0, r1, c0, c1)
            return win[:, rr - r0, cc - c0].T
        out = np.empty((rr.size, AEF_BANDS), dtype=np.int8)
        order = np.argsort(rr, kind="stable")
        # A read call costs about as much as copying MERGE_PIXELS extra pixels: merge rows
        # (and columns within a strip) whose gap is cheaper to read through than to skip.
        gap_rows = max(1, MERGE_PIXELS // (c1 - c0))
        breaks = np.flatnonzero(np.diff(rr[order]) > gap_rows) + 1
        for strip in np.split(order, breaks):
            sr, sc = rr[strip], cc[strip]
            h = int(sr.max()) - int(sr.min()) + 1
            corder = np.argsort(sc, kind="stable")
            cbreaks = np.flatnonzero(np.diff(sc[corder]) > max(1, MERGE_PIXELS // h)) + 1
            for part in np.split(strip[corder], cbreaks):
                pr, pc = rr[part], cc[part]
                b0, b1, d0, d1 = int(pr.min()), int(pr.max()) + 1, int(pc.min()), int(pc.max()) + 1
                win = self._read(row, ds, b0, b1, d0, d1)
                out[part] = win[:, pr - b0, pc - d0].T
        return out
