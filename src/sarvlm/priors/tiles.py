"""Which AlphaEarth tiles a dataset needs, and fetching them (``sarvlm priors tiles``).

The public AlphaEarth Foundations Satellite Embedding COGs live in Google Cloud Storage::

    gs://alphaearth_foundations/satellite_embedding/v1/annual/{year}/{zone}{N|S}/{id}-{yOff:010d}-{xOff:010d}.tiff
    https://storage.googleapis.com/alphaearth_foundations/satellite_embedding/v1/annual/...   (same objects)

with the index ``aef_index.csv`` / ``aef_index.parquet`` at the ``annual/`` level (one row per
tile: ``path``, ``crs``, ``year``, ``utm_zone``, UTM and WGS84 bounds). Each tile is 8192×8192
pixels of 64 int8 bands (about 4 GB), so a dataset should fetch only the tiles its scenes touch.
Licence: CC-BY 4.0, attribution "The AlphaEarth Foundations Satellite Embedding dataset is produced
by Google and Google DeepMind."

:func:`needed_tiles` reads the samples of a dataset (as ``sarvlm priors`` does), takes each
georeferenced, dated sample's WGS84 footprint and the year the cache would use (the exact year, or
with the ``nearest`` policy the nearest year the index has), and returns the index rows whose
footprints intersect — exactly the tiles ``aef-cog:DIR`` will open for that dataset.
:func:`fetch_tiles` copies them into ``DIR/{year}/{zone}/{file}`` with ``gcloud storage cp``,
``gsutil cp`` or HTTPS, whichever is available.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarvlm.core.errors import SarvlmError

BUCKET = "gs://alphaearth_foundations/satellite_embedding/v1/annual"
HTTPS_BUCKET = "https://storage.googleapis.com/alphaearth_foundations/satellite_embedding/v1/annual"


@dataclass
class TileNeed:
    """One index tile a dataset needs."""

    path: str  # the index's path (a bucket URL)
    local: Path  # where aef-cog:DIR expects it
    year: int
    samples: list[str] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return self.local.is_file()


@dataclass
class TileReport:
    tiles: list[TileNeed]
    samples: int
    uncovered: dict[str, int]  # reason -> samples no tile can serve


def _index_dir(source: str) -> Path:
    kind, _, rest = source.partition(":")
    if kind != "aef-cog" or not rest:
        raise SarvlmError(
            f"--source {source!r}: tiles are listed from an AEF COG index: use aef-cog:DIR, DIR holding "
            f"aef_index.csv or aef_index.parquet (download it from {BUCKET}/aef_index.csv)"
        )
    return Path(rest)


def needed_tiles(
    data: str | Path, source: str, year_policy: str = "nearest", default_year: int | None = None
) -> TileReport:
    """The index tiles the samples of ``data`` need (see module docs), sorted by path."""
    import shapely

    from sarvlm.io.aef_layout import read_aef_index
    from sarvlm.priors.anchor_grid import footprint_from_georef
    from sarvlm.priors.cache import BAD_FOOTPRINT, NO_COVERAGE, NO_GEOREF, NO_YEAR, load_prior_targets
    from sarvlm.priors.sources.base import choose_year

    if year_policy not in ("nearest", "exact"):
        raise SarvlmError(f"year policy: must be 'nearest' or 'exact', got {year_policy!r}")
    root = _index_dir(source)
    index = read_aef_index(root)
    years = sorted({int(y) for y in index["year"]})
    boxes = [
        shapely.box(w, s, e, n) if g is None else g
        for w, s, e, n, g in zip(
            index["wgs84_west"], index["wgs84_south"], index["wgs84_east"], index["wgs84_north"], index["geometry"]
        )
    ]
    needs: dict[int, TileNeed] = {}
    uncovered: dict[str, int] = {}
    targets = load_prior_targets(data)
    for t in targets:
        reason = ""
        if t.georef is None:
            reason = NO_GEOREF
        elif (t.year if t.year is not None else default_year) is None:
            reason = NO_YEAR
        if not reason:
            try:
                bbox = footprint_from_georef(t.georef, t.width, t.height)
            except SarvlmError:
                reason = BAD_FOOTPRINT
        if not reason:
            year = choose_year(int(t.year if t.year is not None else default_year), years, year_policy)
            foot = shapely.box(*bbox)
            hits = (
                [i for i, geom in enumerate(boxes) if int(index["year"].iloc[i]) == year and geom.intersects(foot)]
                if year is not None
                else []
            )
            if not hits:
                reason = NO_COVERAGE
            for i in hits:
                need = needs.setdefault(
                    i,
                    TileNeed(str(index["path"].iloc[i]), Path(index["local_path"].iloc[i]), int(index["year"].iloc[i])),
                )
                need.samples.append(t.sample_id)
        if reason:
            uncovered[reason] = uncovered.get(reason, 0) + 1
    tiles = sorted(needs.values(), key=lambda n: n.path)
    return TileReport(tiles=tiles, samples=len(targets), uncovered=dict(sorted(uncovered.items())))


def _https_url(path: str) -> str:
    if path.startswith("gs://"):
        return "https://storage.googleapis.com/" + path[len("gs://") :]
    return path


def fetch_command(path: str, dest: Path, tools: dict[str, str | None] | None = None) -> list[str] | None:
    """The command that copies one tile (gcloud, then gsutil), or None to use HTTPS."""
    tools = tools if tools is not None else {t: shutil.which(t) for t in ("gcloud", "gsutil")}
    if path.startswith("gs://") and tools.get("gcloud"):
        return [str(tools["gcloud"]), "storage", "cp", path, str(dest)]
    if path.startswith("gs://") and tools.get("gsutil"):
        return [str(tools["gsutil"]), "cp", path, str(dest)]
    return None


def fetch_tiles(report: TileReport, log: Any = print) -> int:
    """Copy every missing tile of ``report`` to its local path (atomically); returns how many."""
    from sarvlm.core.atomic import atomic_path

    fetched = 0
    for need in report.tiles:
        if need.present:
            continue
        need.local.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(need.local, suffix=".tiff") as tmp:
            cmd = fetch_command(need.path, Path(tmp))
            log(f"fetching {need.path} -> {need.local}")
            if cmd is not None:
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                    raise SarvlmError(f"{need.path}: {Path(cmd[0]).name} failed ({last[0]})")
            else:
                _https_get(_https_url(need.path), Path(tmp))
        fetched += 1
    return fetched


def _https_get(url: str, dest: Path) -> None:
    import urllib.error
    import urllib.request

    if not url.startswith("https://"):
        raise SarvlmError(f"{url}: cannot fetch (no gcloud/gsutil for gs:// and not an https URL)")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:  # noqa: S310 - https only
            shutil.copyfileobj(resp, out, length=1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SarvlmError(f"{url}: download failed ({reason}); no network? copy the tiles by hand") from None
