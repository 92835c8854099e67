"""Hostile and broken inputs for the battery in tests/test_hostile_inputs.py (issue 12).

``make_fixtures(root)`` writes, under ``root``:

- ``ds/``: a small valid dataset (two 32x32 PNG images, a float GeoTIFF, samples.jsonl) and
  ``built/`` (a build of it), the baseline every bad case perturbs;
- ``secret/secret.png`` and ``secret/passwd``: files *outside* the dataset root that no verb may read;
- hostile images: a GDAL VRT renamed ``.tif`` (reads ``secret/passwd``), decompression bombs
  (a 60 KB TIFF declaring 100000x100000 in strips sharing one compressed block, a PNG declaring 100000x100000, a 20000x20000
  float32 TIFF of 1-row strips that all share one data block), a FIFO named ``.png``, a truncated
  PNG, an all-NaN GeoTIFF, a zero-byte file, a 3-band PNG;
- helpers to write samples/examples JSONL naming any of them.

Run directly (``python tests/data/hostile/make_fixtures.py OUT``) to inspect the files.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _tiff(path: Path, width: int, height: int, rows_per_strip: int, sample_format: int, bits: int) -> None:
    """A complete, valid little-endian TIFF whose strips all point at one shared deflate-compressed
    strip of zeros: the file stays small whatever size it declares, and every pixel decodes."""
    n_strips = (height + rows_per_strip - 1) // rows_per_strip
    block = zlib.compress(bytes(min(rows_per_strip, height) * width * bits // 8), 9)
    strip_bytes = len(block)
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, bits),
        (259, 3, 1, 8),  # deflate
        (262, 3, 1, 1),  # black is zero
        (273, 4, n_strips, None),  # StripOffsets (array)
        (277, 3, 1, 1),
        (278, 4, 1, rows_per_strip),
        (279, 4, n_strips, None),  # StripByteCounts (array)
        (339, 3, 1, sample_format),
    ]
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    offsets_at = ifd_offset + ifd_size
    counts_at = offsets_at + 4 * n_strips
    data_at = counts_at + 4 * n_strips
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset))
    out += struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = offsets_at if n_strips > 1 else data_at
        elif tag == 279:
            value = counts_at if n_strips > 1 else strip_bytes
        if typ == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    if n_strips > 1:
        out += struct.pack(f"<{n_strips}I", *([data_at] * n_strips))
        out += struct.pack(f"<{n_strips}I", *([strip_bytes] * n_strips))
    out += block
    path.write_bytes(bytes(out))


def _png_bomb(path: Path, width: int, height: int) -> None:
    """A PNG header declaring ``width x height`` grey pixels with a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _vrt(path: Path, target: Path) -> None:
    path.write_text(
        '<VRTDataset rasterXSize="8" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1">'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{target}</SourceFilename><SourceBand>1</SourceBand>'
        '<SrcRect xOff="0" yOff="0" xSize="8" ySize="4"/><DstRect xOff="0" yOff="0" xSize="8" ySize="4"/>'
        "</SimpleSource></VRTRasterBand></VRTDataset>"
    )


def sample(rid: str, image: str, width: int = 32, height: int = 32, **extra: object) -> dict:
    rec: dict = {
        "id": rid,
        "image": image,
        "width": width,
        "height": height,
        "polarizations": ["VV"],
        "date": "2022-04-09",
        "objects": [{"category": "ship", "bbox": [2, 2, 12, 12]}],
        "captions": [{"text": "A ship in open water near the coast."}],
    }
    rec.update(extra)
    return rec


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_fixtures(root: Path) -> dict[str, Path]:
    """Write every fixture under ``root``; returns name -> path."""
    root = Path(root)
    ds = root / "ds"
    (ds / "images").mkdir(parents=True)
    secret = root / "secret"
    secret.mkdir()
    rng = np.random.default_rng(0)
    f: dict[str, Path] = {"root": root, "ds": ds}
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(ds / "images" / f"im{i}.png")
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(secret / "secret.png")
    f["secret_png"] = secret / "secret.png"
    (secret / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n" * 4)
    f["passwd"] = secret / "passwd"
    f["samples"] = write_jsonl(ds / "samples.jsonl", [sample("s0", "images/im0.png"), sample("s1", "images/im1.png")])
    # hostile images, all inside the dataset root (so only the image check can stop them)
    img = ds / "images"
    _vrt(img / "evil.tif", f["passwd"])
    f["vrt"] = img / "evil.tif"
    _tiff(img / "bomb.tif", 100_000, 100_000, 500, 1, 8)
    f["bomb_tif"] = img / "bomb.tif"
    _png_bomb(img / "bomb.png", 100_000, 100_000)
    f["bomb_png"] = img / "bomb.png"
    _tiff(img / "big.tif", 20_000, 20_000, 1, 3, 32)
    f["big_tif"] = img / "big.tif"
    os.mkfifo(img / "fifo.png")
    f["fifo"] = img / "fifo.png"
    good = (img / "im0.png").read_bytes()
    (img / "truncated.png").write_bytes(good[: len(good) // 2])
    f["truncated"] = img / "truncated.png"
    (img / "empty.png").write_bytes(b"")
    f["empty_img"] = img / "empty.png"
    from sarvlm.io.raster import write_raster

    write_raster(img / "nan.tif", np.full((32, 32), np.nan, np.float32))
    f["nan_tif"] = img / "nan.tif"
    write_raster(img / "float.tif", rng.gamma(1.0, 1.0, (32, 32)).astype(np.float32))
    f["float_tif"] = img / "float.tif"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(img / "rgb.png")
    f["rgb_png"] = img / "rgb.png"
    os.symlink(f["secret_png"].resolve(), img / "link.png")
    f["symlink"] = img / "link.png"
    (root / "latin1.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    f["latin1"] = root / "latin1.jsonl"
    (root / "empty.jsonl").write_bytes(b"")
    f["empty_jsonl"] = root / "empty.jsonl"
    (root / "a_file").write_text("not a directory\n")
    f["a_file"] = root / "a_file"
    from sarvlm.data.builder import BuildOptions, build_dataset

    build_dataset(f["samples"], ds / "built", BuildOptions(tasks=["count"], split="1:0"))
    f["built"] = ds / "built"
    # a one-scene synthetic world: its AlphaEarth tiles are the prior source of the `priors show` cases
    from sarvlm.core.record import read_samples
    from sarvlm.synth.world import generate_world

    generate_world(root / "world", 1, size=32, optical=False)
    f["aef"] = root / "world" / "aef"
    rec = next(iter(read_samples(root / "world" / "samples.jsonl")))
    f["world_record"] = rec  # type: ignore[assignment]
    return f


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-fixtures")
    for name, path in make_fixtures(out).items():
        print(f"{name:12s} {path}")
