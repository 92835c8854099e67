"""Sentinel-1 SAFE products: annotation XML metadata and the geolocation grid as a GCP georeference.

Each measurement (swath x polarisation) of a SAFE product has an annotation file
``<product>.SAFE/annotation/s1?-<swath>-<type>-<pol>-....xml``. Its ``geolocationGrid`` ties image
``line``/``pixel`` to latitude, longitude and height (a coarse grid, e.g. 10 x 21 points for an IW
GRD). :func:`georef_from_annotation` turns the grid into a GCP :class:`~sarvlm.core.record.GeoRef`
(``gcp_crs`` EPSG:4326) that :mod:`sarvlm.io.georef` maps through a polynomial + thin-plate spline.

Grid ``line``/``pixel`` values are used as given, as GDAL's SAFE driver and the GCPs embedded in
the measurement TIFFs do (they index pixels; the half-pixel between index and corner convention,
5 m on a 10 m GRD pixel, is not applied).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from sarvlm.core.errors import InputError, NotFoundError
from sarvlm.core.record import GeoRef, GroundControlPoint


@dataclass(frozen=True)
class GeolocationPoint:
    """One node of the geolocation grid."""

    line: float
    pixel: float
    latitude: float
    longitude: float
    height: float
    incidence_angle: float | None = None


@dataclass(frozen=True)
class Sentinel1Annotation:
    """The parts of a Sentinel-1 annotation file that sarvlm uses."""

    path: Path
    mission: str  # S1A / S1B / ...
    mode: str  # IW / EW / SM / WV
    swath: str  # IW1, IW (GRD), EW1, S3, ...
    product_type: str  # GRD / SLC
    polarisation: str  # VV / VH / HH / HV
    width: int  # numberOfSamples
    height: int  # numberOfLines
    range_pixel_spacing_m: float
    azimuth_pixel_spacing_m: float
    first_line_time: str
    last_line_time: str
    pass_direction: str | None
    grid: tuple[GeolocationPoint, ...] = field(repr=False)

    @property
    def date(self) -> str:
        """Acquisition date ``YYYY-MM-DD`` (of the first line)."""
        return self.first_line_time[:10]

    @property
    def georef(self) -> GeoRef:
        """The geolocation grid as a GCP georeference in WGS84."""
        return GeoRef(
            gcps=[
                GroundControlPoint(row=p.line, col=p.pixel, x=p.longitude, y=p.latitude, z=p.height) for p in self.grid
            ],
            gcp_crs="EPSG:4326",
        )


def _optional_text(root: ET.Element, path: str) -> str | None:
    node = root.find(path)
    if node is None or node.text is None or not node.text.strip():
        return None
    return node.text.strip()


def _text(root: ET.Element, path: str, where: Path) -> str:
    text = _optional_text(root, path)
    if text is None:
        raise InputError(f"{where}: missing <{path}> (not a Sentinel-1 annotation file?)")
    return text


def _number(root: ET.Element, path: str, where: Path) -> float:
    text = _text(root, path, where)
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: <{path}> is not a number: {text!r}") from None


def read_annotation(path: str | Path) -> Sentinel1Annotation:
    """Parse a Sentinel-1 annotation XML file (product annotation, not calibration/noise)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"{path}: malformed XML ({exc})") from None
    if root.tag != "product":
        raise InputError(f"{path}: not a Sentinel-1 product annotation (root element <{root.tag}>)")
    points = []
    for node in root.iterfind("geolocationGrid/geolocationGridPointList/geolocationGridPoint"):
        inc = node.findtext("incidenceAngle")
        try:
            points.append(
                GeolocationPoint(
                    line=float(node.findtext("line")),  # type: ignore[arg-type]  # None -> TypeError below
                    pixel=float(node.findtext("pixel")),  # type: ignore[arg-type]
                    latitude=float(node.findtext("latitude")),  # type: ignore[arg-type]
                    longitude=float(node.findtext("longitude")),  # type: ignore[arg-type]
                    height=float(node.findtext("height") or 0.0),
                    incidence_angle=float(inc) if inc else None,
                )
            )
        except (TypeError, ValueError):
            raise InputError(
                f"{path}: geolocationGridPoint {len(points)}: missing or non-numeric line/pixel/latitude/longitude"
            ) from None
    if len(points) < 3:
        raise InputError(f"{path}: geolocationGrid has {len(points)} points (need at least 3)")
    info = "imageAnnotation/imageInformation/"
    return Sentinel1Annotation(
        path=path,
        mission=_text(root, "adsHeader/missionId", path),
        mode=_text(root, "adsHeader/mode", path),
        swath=_text(root, "adsHeader/swath", path),
        product_type=_text(root, "adsHeader/productType", path),
        polarisation=_text(root, "adsHeader/polarisation", path).upper(),
        width=int(_number(root, info + "numberOfSamples", path)),
        height=int(_number(root, info + "numberOfLines", path)),
        range_pixel_spacing_m=_number(root, info + "rangePixelSpacing", path),
        azimuth_pixel_spacing_m=_number(root, info + "azimuthPixelSpacing", path),
        first_line_time=_text(root, info + "productFirstLineUtcTime", path),
        last_line_time=_text(root, info + "productLastLineUtcTime", path),
        pass_direction=_optional_text(root, "generalAnnotation/productInformation/pass"),
        grid=tuple(points),
    )


def georef_from_annotation(path: str | Path) -> GeoRef:
    """GCP georeference from the geolocation grid of one annotation file."""
    return read_annotation(path).georef


def find_annotations(safe_dir: str | Path) -> list[Path]:
    """The product annotation files of a ``.SAFE`` directory (calibration/noise/rfi excluded), sorted."""
    safe_dir = Path(safe_dir)
    folder = safe_dir / "annotation"
    if not folder.is_dir():
        raise InputError(f"{safe_dir}: no annotation/ folder (not a Sentinel-1 .SAFE product?)")
    files = sorted(p for p in folder.glob("*.xml") if p.is_file())
    if not files:
        raise InputError(f"{folder}: no annotation XML files")
    return files


def safe_annotation(safe_dir: str | Path, polarisation: str, swath: str | None = None) -> Sentinel1Annotation:
    """The annotation of one polarisation (and swath, for multi-swath SLC) of a ``.SAFE`` product."""
    from sarvlm.core.record import normalize_polarization

    pol = normalize_polarization(polarisation)
    found = [read_annotation(p) for p in find_annotations(safe_dir)]
    matches = [a for a in found if a.polarisation == pol and (swath is None or a.swath.upper() == swath.upper())]
    if not matches:
        have = ", ".join(sorted({f"{a.swath}/{a.polarisation}" for a in found}))
        raise InputError(
            f"{safe_dir}: no annotation for polarisation {pol}{' swath ' + swath if swath else ''} (have {have})"
        )
    if len(matches) > 1:
        raise InputError(
            f"{safe_dir}: several swaths for {pol} ({', '.join(a.swath for a in matches)}): choose one with swath="
        )
    return matches[0]
