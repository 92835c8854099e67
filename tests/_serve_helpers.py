"""Helpers of the serve tests: a real uvicorn server in a thread, data URLs, test rasters."""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def running_server(app, timeout: float = 60.0, graceful_timeout: float | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL.

    Leaving the block sets ``should_exit``, as uvicorn's SIGTERM handler does."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=graceful_timeout
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    from PIL import Image

    img = Image.fromarray((np.random.default_rng(seed).random((height, width)) * 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_geotiff(path: Path, lon: float, lat: float, size: int = 64, pixel_m: float = 10.0, date: str = "2021-06-01"):
    """A float32 linear-intensity GeoTIFF in UTM 31N whose north-west corner is at (lon, lat)."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import Affine

    x0, y0 = Transformer.from_crs(4326, 32631, always_xy=True).transform(lon, lat)
    transform = Affine(pixel_m, 0.0, x0, 0.0, -pixel_m, y0)
    data = np.random.default_rng(1).gamma(1.0, 0.05, size=(size, size)).astype(np.float32)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="float32",
        crs="EPSG:32631",
        transform=transform,
    ) as ds:
        ds.write(data, 1)
        ds.update_tags(ACQUISITION_DATE=date, UNITS="linear intensity (sigma0)")
    return transform


def utm_to_lonlat(transform, cols, rows):
    """Oracle: pixel corners → lon/lat through rasterio's affine and pyproj (not sarvlm's georef code)."""
    from pyproj import Transformer
    from rasterio.transform import xy

    xs, ys = xy(transform, rows, cols, offset="ul")
    lon, lat = Transformer.from_crs(32631, 4326, always_xy=True).transform(np.asarray(xs), np.asarray(ys))
    return np.asarray(lon), np.asarray(lat)
