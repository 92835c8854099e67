"""The official AlphaEarth Foundations (AEF) Cloud-Optimized GeoTIFF layout: writer, index, codec.

Google publishes the annual Satellite Embedding as 8192×8192 px GeoTIFFs of 64 int8 bands in
the local UTM zone::

    {root}/{year}/{zone}{N|S}/{id}-{yOff:010d}-{xOff:010d}.tiff

with NoData −128 in every band and an index (``aef_index.csv`` / ``aef_index.parquet``) of
one row per tile: ``path`` (a bucket URL whose tail is ``{year}/{zone}/{file}``), ``crs``,
``year``, ``utm_zone``, ``utm_west/south/east/north``, ``wgs84_west/south/east/north`` and,
in the parquet file, the WGS84 footprint polygon clipped to the UTM zone (WKB ``geometry``).

Values are quantised as ``q = round(sign(v)·sqrt(|v|)·127.5)`` and de-quantised as
``v = sign(q)·(q/127.5)²``. This module writes and reads exactly that layout, so the
synthetic world, the tests and real downloaded tiles all go through one code path
(:mod:`sarvlm.priors.sources.aef_cog`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sarvlm.core.errors import InputError, NotFoundError

AEF_BANDS = 64
AEF_NODATA = -128
AEF_BAND_NAMES = tuple(f"A{i:02d}" for i in range(AEF_BANDS))
AEF_FIRST_YEAR = 2017
DEFAULT_BUCKET_PREFIX = "gs://alphaearth_foundations/satellite_embedding/v1/annual"
INDEX_COLUMNS = (
    "path",
    "crs",
    "year",
    "utm_zone",
    "utm_west",
    "utm_south",
    "utm_east",
    "utm_north",
    "wgs84_west",
    "wgs84_south",
    "wgs84_east",
    "wgs84_north",
)
AEF_ATTRIBUTION = "The AlphaEarth Foundations Satellite Embedding dataset is produced by Google and Google DeepMind."

_ZONE_DIR_RE = re.compile(r"^(\d{1,2})([NS])$")
_TILE_EXTS = (".tiff", ".tif")


# ----------------------------------------------------------------------------- codec


def quantize_aef(values: np.ndarray) -> np.ndarray:
    """Float embeddings in [-1, 1] → int8 codes of the official layout; NaN → NoData (−128)."""
    v = np.asarray(values, dtype=np.float64)
    nan = ~np.isfinite(v)
    q = np.sign(v) * np.sqrt(np.abs(np.where(nan, 0.0, v))) * 127.5
    q = np.where(nan, AEF_NODATA, np.clip(np.rint(np.where(nan, 0.0, q)), -127, 127))
    return q.astype(np.int8)


def dequantize_aef(codes: np.ndarray, nodata_value: float = np.nan) -> np.ndarray:
    """int8 codes → float32 ``sign(q)·(q/127.5)²``; NoData (−128) becomes ``nodata_value`` (NaN)."""
    q = np.asarray(codes)
    if q.dtype != np.int8:
        raise InputError(f"AEF codes must be int8, got {q.dtype}")
    f = q.astype(np.float32) / np.float32(127.5)
    out = np.sign(f) * f * f
    out[q == AEF_NODATA] = nodata_value
    return out.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- zones


def utm_epsg(utm_zone: int, hemisphere: str) -> int:
    """EPSG code of WGS84 / UTM zone ``utm_zone`` ``hemisphere`` ('N' → 326xx, 'S' → 327xx)."""
    if not 1 <= int(utm_zone) <= 60:
        raise InputError(f"utm_zone: must be 1..60, got {utm_zone}")
    hemisphere = hemisphere.upper()
    if hemisphere not in ("N", "S"):
        raise InputError(f"hemisphere: must be 'N' or 'S', got {hemisphere!r}")
    return (32600 if hemisphere == "N" else 32700) + int(utm_zone)


def zone_from_epsg(epsg: int | None) -> tuple[int, str] | None:
    """``(zone, 'N'|'S')`` for a WGS84/UTM EPSG code, else None."""
    if epsg is None:
        return None
    if 32601 <= epsg <= 32660:
        return epsg - 32600, "N"
    if 32701 <= epsg <= 32760:
        return epsg - 32700, "S"
    return None


def zone_lonlat_box(utm_zone: int, hemisphere: str) -> tuple[float, float, float, float]:
    """The WGS84 box a UTM zone covers: 6° of longitude, one hemisphere."""
    west = -180.0 + 6.0 * (int(utm_zone) - 1)
    return (west, 0.0, west + 6.0, 90.0) if hemisphere.upper() == "N" else (west, -90.0, west + 6.0, 0.0)


def tile_filename(tile_id: str, y_off: int = 0, x_off: int = 0) -> str:
    """``{id}-{yOff:010d}-{xOff:010d}.tiff`` as in the official bucket."""
    if not tile_id or "/" in tile_id or "\\" in tile_id:
        raise InputError(f"tile id {tile_id!r}: must be a non-empty file-name stem")
    return f"{tile_id}-{int(y_off):010d}-{int(x_off):010d}.tiff"


# ----------------------------------------------------------------------------- writer


def write_aef_tile(
    root: str | Path,
    year: int,
    utm_zone: int,
    hemisphere: str,
    tile_id_or_name: str,
    array_int8: np.ndarray,
    transform: Sequence[float],
    crs: str | int | None = None,
    bottom_up: bool = False,
    offset: tuple[int, int] = (0, 0),
    blocksize: int = 256,
) -> Path:
    """Write one AEF tile in the official layout and return its path.

    ``array_int8`` is ``(64, H, W)`` int8 in north-up row order (row 0 is the northern edge)
    and ``transform`` its north-up affine (``e < 0``) as rasterio ``Affine`` or the 6
    coefficients ``(a, b, c, d, e, f)``. With ``bottom_up=True`` the file stores rows
    south-first with a positive y pixel size, as some mirrors do; readers must handle both.
    ``tile_id_or_name`` is either a full file name ending in ``.tiff``/``.tif`` or an id that
    becomes ``{id}-{yOff:010d}-{xOff:010d}.tiff`` with ``offset=(yOff, xOff)``.
    The file is a tiled, deflate-compressed GeoTIFF with internal overviews (nearest),
    written atomically.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import Affine

    from sarvlm.core.atomic import atomic_path

    data = np.asarray(array_int8)
    if data.dtype != np.int8:
        raise InputError(f"{tile_id_or_name}: array must be int8 AEF codes, got {data.dtype} (use quantize_aef)")
    if data.ndim != 3 or data.shape[0] != AEF_BANDS:
        raise InputError(f"{tile_id_or_name}: array must be (64, H, W), got {data.shape}")
    epsg = utm_epsg(utm_zone, hemisphere)
    if crs is None:
        crs = f"EPSG:{epsg}"
    crs_obj = rasterio.crs.CRS.from_user_input(crs)
    if crs_obj.to_epsg() != epsg:
        raise InputError(
            f"{tile_id_or_name}: crs {crs} does not match UTM zone {utm_zone}{hemisphere.upper()} (EPSG:{epsg})"
        )
    aff = transform if isinstance(transform, Affine) else Affine(*list(transform)[:6])
    if aff.b != 0 or aff.d != 0:
        raise InputError(f"{tile_id_or_name}: rotated transforms are not part of the AEF layout")
    if aff.e >= 0:
        raise InputError(
            f"{tile_id_or_name}: give the north-up transform (negative y pixel size); use bottom_up=True to store it flipped"
        )
    _, height, width = data.shape
    if bottom_up:
        data = data[:, ::-1, :]
        aff = Affine(aff.a, 0.0, aff.c, 0.0, -aff.e, aff.f + aff.e * height)

    name = tile_id_or_name if tile_id_or_name.lower().endswith(_TILE_EXTS) else tile_filename(tile_id_or_name, *offset)
    out = Path(root) / str(int(year)) / f"{int(utm_zone)}{hemisphere.upper()}" / name
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": AEF_BANDS,
        "dtype": "int8",
        "crs": crs_obj,
        "transform": aff,
        "nodata": AEF_NODATA,
        "compress": "deflate",
        "interleave": "pixel",
    }
    # Tiled layout only when the raster is large enough for 16-multiple blocks.
    if width >= 16 and height >= 16:
        bs = max(16, min(blocksize, (min(width, height) // 16) * 16))
        profile.update(tiled=True, blockxsize=bs, blockysize=bs)
    with atomic_path(out, suffix=".tiff") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, band in enumerate(AEF_BAND_NAMES, 1):
                dst.set_band_description(i, band)
            dst.update_tags(AEF_YEAR=str(int(year)), LICENSE="CC-BY-4.0", ATTRIBUTION=AEF_ATTRIBUTION)
            factors = [f for f in (2, 4, 8, 16) if min(width, height) // f >= 8]
            if factors:
                dst.build_overviews(factors, Resampling.nearest)
                dst.update_tags(ns="rio_overview", resampling="nearest")
    return out


# ----------------------------------------------------------------------------- index


def _footprint(src_crs, left: float, bottom: float, right: float, top: float, zone: int, hemi: str, densify: int = 32):
    """WGS84 polygon of the tile extent (densified edges), clipped to its UTM zone."""
    from pyproj import Transformer
    from shapely.geometry import Polygon, box

    t = np.linspace(0.0, 1.0, densify + 1)
    xs = np.concatenate(
        [left + (right - left) * t, np.full_like(t, right), right - (right - left) * t, np.full_like(t, left)]
    )
    ys = np.concatenate(
        [np.full_like(t, bottom), bottom + (top - bottom) * t, np.full_like(t, top), top - (top - bottom) * t]
    )
    tr = Transformer.from_crs(src_crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(xs, ys)
    poly = Polygon(np.column_stack([lon, lat])).buffer(0)
    return poly.intersection(box(*zone_lonlat_box(zone, hemi)))


def scan_aef_tiles(root: str | Path) -> list[Path]:
    """All tile files under ``root/{year}/{zone}{N|S}/`` in sorted (deterministic) order."""
    root = Path(root)
    tiles = []
    for year_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        for zone_dir in sorted(p for p in year_dir.iterdir() if p.is_dir() and _ZONE_DIR_RE.match(p.name)):
            tiles.extend(
                sorted(p for p in zone_dir.iterdir() if p.suffix.lower() in _TILE_EXTS and not p.name.startswith("."))
            )
    return tiles


def index_rows(root: str | Path, bucket_prefix: str = DEFAULT_BUCKET_PREFIX) -> list[dict]:
    """One official-schema row (plus a shapely ``geometry``) per tile under ``root``."""
    import rasterio
    from rasterio.warp import transform_bounds

    rows = []
    for tile in scan_aef_tiles(root):
        year = int(tile.parent.parent.name)
        m = _ZONE_DIR_RE.match(tile.parent.name)
        assert m is not None  # scan_aef_tiles only yields tiles under {zone}{N|S} directories
        zone, hemi = int(m.group(1)), m.group(2)
        try:
            with rasterio.open(tile) as src:
                crs = src.crs
                b = src.bounds
                count = src.count
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"{tile}: cannot read as GeoTIFF ({exc})") from None
        epsg = crs.to_epsg() if crs else None
        if zone_from_epsg(epsg) != (zone, hemi):
            raise InputError(f"{tile}: crs EPSG:{epsg} does not match its zone directory {tile.parent.name}")
        if count != AEF_BANDS:
            raise InputError(f"{tile}: has {count} bands, AEF tiles have {AEF_BANDS}")
        # Bottom-up tiles report bottom > top: normalise.
        west, east = min(b.left, b.right), max(b.left, b.right)
        south, north = min(b.bottom, b.top), max(b.bottom, b.top)
        geom = _footprint(crs, west, south, east, north, zone, hemi)
        w84 = transform_bounds(crs, "EPSG:4326", west, south, east, north, densify_pts=21)
        rows.append(
            {
                "path": f"{bucket_prefix.rstrip('/')}/{year}/{zone}{hemi}/{tile.name}",
                "crs": f"EPSG:{epsg}",
                "year": year,
                "utm_zone": f"{zone}{hemi}",
                "utm_west": float(west),
                "utm_south": float(south),
                "utm_east": float(east),
                "utm_north": float(north),
                "wgs84_west": float(w84[0]),
                "wgs84_south": float(w84[1]),
                "wgs84_east": float(w84[2]),
                "wgs84_north": float(w84[3]),
                "geometry": geom,
            }
        )
    return rows


def write_aef_index(root: str | Path, bucket_prefix: str = DEFAULT_BUCKET_PREFIX) -> tuple[Path, Path]:
    """Scan the tiles under ``root`` and write ``aef_index.csv`` and ``aef_index.parquet``.

    The CSV holds the official columns; the parquet adds the WGS84 footprint polygon
    (clipped to the UTM zone) as WKB ``geometry`` with GeoParquet metadata. Rows are sorted
    by path so the files are byte-identical for identical tiles.
    """
    import json

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    from sarvlm.core.atomic import atomic_open, atomic_path

    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"{root}: no such directory")
    rows = index_rows(root, bucket_prefix)
    if not rows:
        raise InputError(f"{root}: no AEF tiles found under {{year}}/{{zone}}{{N|S}}/*.tiff")
    frame = pd.DataFrame([{k: r[k] for k in INDEX_COLUMNS} for r in rows], columns=list(INDEX_COLUMNS))
    csv_path = root / "aef_index.csv"
    with atomic_open(csv_path) as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")

    table = pa.Table.from_pandas(frame, preserve_index=False)
    wkb = [shapely.to_wkb(r["geometry"]) for r in rows]
    table = table.append_column("geometry", pa.array(wkb, type=pa.binary()))
    bbox = [
        min(r["wgs84_west"] for r in rows),
        min(r["wgs84_south"] for r in rows),
        max(r["wgs84_east"] for r in rows),
        max(r["wgs84_north"] for r in rows),
    ]
    geo = {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {"encoding": "WKB", "geometry_types": ["Polygon", "MultiPolygon"], "crs": None, "bbox": bbox}
        },
    }
    meta = dict(table.schema.metadata or {})
    meta.pop(b"pandas", None)
    meta[b"geo"] = json.dumps(geo, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    pq_path = root / "aef_index.parquet"
    with atomic_path(pq_path) as tmp:
        pq.write_table(table, tmp)
    return csv_path, pq_path


def read_aef_index(root: str | Path):
    """The tile index of an AEF directory as a pandas DataFrame.

    Prefers ``aef_index.parquet`` (with footprint polygons), else ``aef_index.csv``. Adds
    ``local_path`` (the ``{year}/{zone}/{file}`` tail of ``path`` resolved under ``root``)
    and ``geometry`` (a shapely polygon, or None when the file has none).
    """
    import pandas as pd
    import shapely

    root = Path(root)
    pq_path, csv_path = root / "aef_index.parquet", root / "aef_index.csv"
    if pq_path.exists():
        src = pq_path
        try:
            frame = pd.read_parquet(pq_path)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is the file's fault
            raise InputError(f"{pq_path}: cannot read parquet index ({exc})") from None
    elif csv_path.exists():
        src = csv_path
        try:
            frame = pd.read_csv(csv_path)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{csv_path}: cannot read CSV index ({exc})") from None
    else:
        raise NotFoundError(
            f"{root}: no aef_index.parquet or aef_index.csv (write one with sarvlm.io.aef_layout.write_aef_index)"
        )
    missing = [c for c in INDEX_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{src}: missing index column(s) {', '.join(missing)}")

    geoms = [None] * len(frame)
    geom_col = next((c for c in ("geometry", "geom", "WKB", "WKT", "wkt") if c in frame.columns), None)
    if geom_col is not None:
        vals = frame[geom_col].tolist()
        try:
            geoms = [
                None
                if v is None or (isinstance(v, float) and np.isnan(v))
                else (shapely.from_wkt(v) if isinstance(v, str) else shapely.from_wkb(v))
                for v in vals
            ]
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{src}: column {geom_col}: cannot decode footprint polygons ({exc})") from None
    frame = frame.copy()
    frame["geometry"] = geoms
    local = []
    for i, p in enumerate(frame["path"].astype(str)):
        parts = p.replace("\\", "/").rstrip("/").split("/")
        if len(parts) < 3:
            raise InputError(f"{src}: row {i}: path {p!r} lacks a {{year}}/{{zone}}/{{file}} tail")
        local.append(root.joinpath(*parts[-3:]))
    frame["local_path"] = pd.Series(local, index=frame.index, dtype=object)
    frame["year"] = frame["year"].astype(int)
    return frame
