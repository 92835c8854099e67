"""Speckle filters for SAR intensity: refined Lee, Lee, boxcar.

All three take a 2-D intensity image (linear power, not dB) and return a float32 image of the same
shape. Borders are handled by mirror reflection. Non-finite pixels propagate to the pixels whose
window contains them (the pipeline fills no-data before filtering and masks it again afterwards).

Refined Lee (Lee 1981; window ``N`` in 3..31, odd)
-------------------------------------------------
1. A 3x3 grid of sub-window means covers the ``N x N`` window (sub-window size and step as in
   PolSARpro: 7 -> 3x3 sub-windows 2 px apart, 5 -> 3x3 1 px apart, 3 -> single pixels, ...).
2. Four directional gradients of that 3x3 grid (vertical, two diagonals, horizontal edges) pick the
   edge direction with the largest absolute gradient.
3. The window is split along that direction into two half-windows that both include the centre line
   (8 masks, each ``N(N+1)/2`` pixels). **Lee's rule:** keep the half whose three sub-window means
   average closest to the centre sub-window mean, i.e. the side of the edge the centre pixel belongs
   to. (PolSARpro and its port in ``polsartools`` instead take the side given by the sign of the
   gradient, which is always the darker side: it lowers the mean of real scenes by ~20%.)
4. Inside the chosen half-window, the local mean ``m`` and variance ``v`` drive Lee's MMSE estimate
   ``m + b (z - m)`` with ``b = max(0, (v - m^2 s) / (v (1 + s)))`` and ``s = 1 / looks``.

Speed: every half-window sum is built from running row sums with shifted array additions (the
masks are unions of row segments), evaluated in row chunks small enough to stay in cache, for the
intensity and its square together. No Python loop runs per pixel.
"""

from __future__ import annotations

import numpy as np

from sarvlm.core.errors import InputError

# (sub-window size, sub-window step) per window size: PolSARpro's lee_refined_filter table.
_SUBWINDOWS = {
    3: (1, 1),
    5: (3, 1),
    7: (3, 2),
    9: (5, 2),
    11: (5, 3),
    13: (5, 4),
    15: (7, 4),
    17: (7, 5),
    19: (7, 6),
    21: (9, 6),
    23: (9, 7),
    25: (9, 8),
    27: (11, 8),
    29: (11, 9),
    31: (11, 10),
}
# Pixels per chunk: two moments x ~N running-sum arrays stay within a few MB of cache.
_CHUNK_PIXELS = 1 << 16


def check_window(window: int, name: str = "window") -> int:
    """Validate a speckle-filter window size: odd, 3..31."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise InputError(f"{name}: window size must be an odd integer in 3..31, got {window!r}")
    window = int(window)
    if window < 3 or window > 31 or window % 2 == 0:
        raise InputError(f"{name}: window size must be an odd integer in 3..31, got {window}")
    return window


def _check_looks(looks: float) -> float:
    try:
        looks = float(looks)
    except (TypeError, ValueError):
        raise InputError(f"looks: must be a positive number, got {looks!r}") from None
    if not np.isfinite(looks) or looks <= 0:
        raise InputError(f"looks: must be a positive number, got {looks}")
    return looks


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InputError(f"image: speckle filters take a 2-D intensity image, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError("image: zero-size image")
    if np.iscomplexobj(arr):
        raise InputError("image: complex pixels: convert to intensity first (sarvlm.preprocess.to_intensity)")
    return arr.astype(np.float32, copy=False)


def _reflect_index(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start..stop-1`` mirrored into ``0..size-1`` (numpy 'reflect': edge not repeated)."""
    idx = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= size, period - idx, idx)


def _mask_segments(n: int) -> list[list[tuple[int, int, int]]]:
    """The 8 half-window masks as row segments ``(row, first col, length)`` in an ``n x n`` window.

    Order follows PolSARpro: 0 right, 1 upper-right (col >= row), 2 top, 3 upper-left (col <= n-1-row),
    and 4..7 their complements (left, lower-left, bottom, lower-right), each including the centre line.
    """
    c = n // 2
    right = [(k, c, c + 1) for k in range(n)]
    upper_right = [(k, k, n - k) for k in range(n)]
    top = [(k, 0, n) for k in range(c + 1)]
    upper_left = [(k, 0, n - k) for k in range(n)]
    left = [(k, 0, c + 1) for k in range(n)]
    lower_left = [(k, 0, k + 1) for k in range(n)]
    bottom = [(k, 0, n) for k in range(c, n)]
    lower_right = [(k, n - 1 - k, k + 1) for k in range(n)]
    return [right, upper_right, top, upper_left, left, lower_left, bottom, lower_right]


class _RefinedLeeChunker:
    """Buffers and steps of the refined Lee filter for chunks of ``rows x width`` output pixels.

    Each half-window of an ``n x n`` window (``c = n // 2``) is assembled from a few shared parts:
    the ``(c+1) x (c+1)`` square ``sq`` and, for the diagonal halves, two small ``c``-row triangles
    (``t_ul``, ``t_ur``, ``t_ll``, ``t_lr``); rectangular halves are two squares minus their shared
    row/column. All parts hold the intensity and its square stacked, so one numpy call serves both.
    """

    def __init__(self, n: int, rows: int, width: int, looks: float):
        self.n, self.c = n, n // 2
        self.rows, self.width = rows, width
        self.sub, self.step = _SUBWINDOWS[n]
        self.sigma2 = 1.0 / looks
        c, hp, wp = self.c, rows + 2 * (n // 2), width + 2 * (n // 2)
        f32 = np.float32
        self.moments = np.zeros((2, hp, wp), f32)
        # run[L][:, r, j] = sum over columns j..j+L-1; run[1] is the moments themselves.
        self.run = {1: self.moments}
        for length in range(2, max(c + 1, self.sub) + 1):
            self.run[length] = np.zeros((2, hp, wp), f32)
        self.sq = np.zeros((2, hp, wp), f32)
        self.colseg = np.zeros((2, hp, wp), f32)
        self.tri = {name: np.zeros((2, hp, wp), f32) for name in ("ul", "ur", "ll", "lr")} if c > 1 else {}
        # Half-window sums, one plane per mask with room for c extra rows/columns: the right half is
        # the left half c columns on, the bottom half the top half c rows down (read by offset).
        self.sums = np.zeros((8, 2, rows + c, width + c), f32)
        plane = (rows + c) * (width + c)
        self.moment_stride = plane
        shifted = {0: (4, 0, c), 6: (2, c, 0)}
        self.mask_offset = np.array(
            [
                shifted.get(m, (m, 0, 0))[0] * 2 * plane
                + shifted.get(m, (m, 0, 0))[1] * (width + c)
                + shifted.get(m, (m, 0, 0))[2]
                for m in range(8)
            ],
            dtype=np.intp,
        )
        self.sum_base = np.arange(rows, dtype=np.intp)[:, None] * (width + c) + np.arange(width, dtype=np.intp)[None]
        self.box = np.zeros((hp, wp), f32)
        self.hpair = np.zeros((hp, width + 2 * self.step), f32)
        self.vpair = np.zeros((rows + 2 * self.step, wp), f32)
        self.sides = np.empty((8, rows, width), f32)  # positive sides 0..3, negative sides 4..7
        self.side_offset = np.arange(4, dtype=np.intp) * rows * width
        self.side_base = np.arange(rows * width, dtype=np.intp).reshape(rows, width)
        self.grad = np.empty((4, rows, width), f32)

    def _add_rows(self, dst: np.ndarray, src: np.ndarray, count: int, step: int = 1) -> None:
        """dst[:, r] = sum_{k < count} src[:, r + k*step] over the rows where that is defined."""
        rows = src.shape[-2] - (count - 1) * step
        out = dst[..., :rows, :]
        np.add(src[..., :rows, :], src[..., step : step + rows, :], out=out) if count > 1 else np.copyto(
            out, src[..., :rows, :]
        )
        for k in range(2, count):
            np.add(out, src[..., k * step : k * step + rows, :], out=out)

    @staticmethod
    def _triangle(dst: np.ndarray, run: dict[int, np.ndarray], size: int, kind: str) -> None:
        """Sum over a ``size``-row right triangle (kind ul/ur/ll/lr) with its top-left at [r, j]."""
        rows = run[1].shape[1] - size + 1
        cols = run[1].shape[2] - size + 1
        parts = []
        for k in range(size):
            if kind == "ul":
                length, c0 = size - k, 0
            elif kind == "ur":
                length, c0 = size - k, k
            elif kind == "ll":
                length, c0 = k + 1, 0
            else:
                length, c0 = k + 1, size - 1 - k
            parts.append(run[length][:, k : k + rows, c0 : c0 + cols])
        out = dst[:, :rows, :cols]
        np.add(parts[0], parts[1], out=out)  # size >= 2 here (c > 1)
        for part in parts[2:]:
            np.add(out, part, out=out)

    def _load(self, img: np.ndarray, r0: int, r1: int) -> np.ndarray:
        """Copy rows r0..r1 plus a c-pixel mirrored halo into the intensity plane; return that plane."""
        c, height, width = self.c, img.shape[0], img.shape[1]
        hp = r1 - r0 + 2 * c
        plane = self.moments[0, :hp]
        lo, hi = max(0, r0 - c), min(height, r1 + c)
        plane[lo - (r0 - c) : hi - (r0 - c), c : c + width] = img[lo:hi]
        if lo > r0 - c or hi < r1 + c:  # image top/bottom: mirror rows
            rows = _reflect_index(r0 - c, r1 + c, height)
            for i in (*range(0, lo - (r0 - c)), *range(hi - (r0 - c), hp)):
                plane[i, c : c + width] = img[rows[i]]
        cols = _reflect_index(-c, width + c, width)
        plane[:, :c] = plane[:, c + cols[:c]]
        plane[:, c + width :] = plane[:, c + cols[c + width :]]
        return plane

    def __call__(self, img: np.ndarray, r0: int, r1: int) -> np.ndarray:
        n, c, sub, step = self.n, self.c, self.sub, self.step
        padded = self._load(img, r0, r1)
        hp, wp = padded.shape
        h, w = hp - 2 * c, wp - 2 * c
        mom = self.moments[:, :hp]
        np.multiply(padded, padded, out=mom[1])
        run = {1: mom}
        for length in range(2, max(c + 1, sub) + 1):
            prev = run[length - 1]
            cur = self.run[length][:, :hp]
            np.add(prev[..., : wp - length + 1], mom[..., length - 1 :], out=cur[..., : wp - length + 1])
            run[length] = cur

        # Edge direction from the 3x3 grid of sub-window sums (intensity only).
        box = self.box[:hp]
        self._add_rows(box, run[sub][0], sub)
        s = [[box[k * step : k * step + h, l * step : l * step + w] for l in range(3)] for k in range(3)]
        pos, neg = self.sides[:4, :h], self.sides[4:, :h]
        # Pairs of neighbouring sub-windows, shared by the sides below.
        hrows = box.shape[0] - (sub - 1)
        hpair = self.hpair[:hrows, : w + step]
        np.add(box[:hrows, : w + step], box[:hrows, step : 2 * step + w], out=hpair)
        vpair = self.vpair[: h + step, : w + 2 * step]
        np.add(box[: h + step, : w + 2 * step], box[step : 2 * step + h, : w + 2 * step], out=vpair)

        def hp_(k: int, l: int) -> np.ndarray:  # s[k][l] + s[k][l+1]
            return hpair[k * step : k * step + h, l * step : l * step + w]

        def vp_(k: int, l: int) -> np.ndarray:  # s[k][l] + s[k+1][l]
            return vpair[k * step : k * step + h, l * step : l * step + w]

        np.add(vp_(0, 2), s[2][2], out=pos[0])  # right column
        np.add(vp_(0, 0), s[2][0], out=neg[0])  # left column
        np.add(hp_(0, 1), s[1][2], out=pos[1])  # upper-right corner
        np.add(vp_(1, 0), s[2][1], out=neg[1])  # lower-left corner
        np.add(hp_(0, 0), s[0][2], out=pos[2])  # top row
        np.add(hp_(2, 0), s[2][2], out=neg[2])  # bottom row
        np.add(hp_(0, 0), s[1][0], out=pos[3])  # upper-left corner
        np.add(hp_(2, 1), s[1][2], out=neg[3])  # lower-right corner
        grad = self.grad[:, :h]
        np.subtract(pos, neg, out=grad)
        np.abs(grad, out=grad)
        b01 = grad[1] > grad[0]
        b23 = grad[3] > grad[2]
        hi = np.maximum(grad[2], grad[3]) > np.maximum(grad[0], grad[1])  # first maximum wins ties, like argmax
        direction = (hi.view(np.uint8) << 1) | ((hi & b23) | (~hi & b01)).view(np.uint8)
        idx = np.take(self.side_offset, direction, mode="clip")
        idx += self.side_base[:h]
        flat_sides = self.sides.reshape(-1)
        pos_sel = np.take(flat_sides, idx, mode="clip")
        idx += 4 * self.rows * self.width
        neg_sel = np.take(flat_sides, idx, mode="clip")
        centre3 = s[1][1] * np.float32(3.0)
        # Lee's rule: the half whose mean is closer to the centre sub-window's (ties keep the positive side).
        np.subtract(pos_sel, centre3, out=pos_sel)
        np.abs(pos_sel, out=pos_sel)
        np.subtract(neg_sel, centre3, out=neg_sel)
        np.abs(neg_sel, out=neg_sel)
        choice = direction | ((neg_sel < pos_sel).view(np.uint8) << 2)

        # Shared parts of the half-windows.
        q = c + 1
        sq, colseg = self.sq[:, :hp], self.colseg[:, :hp]
        self._add_rows(sq, run[q], q)
        self._add_rows(colseg, mom, q)
        tri = {}
        for kind in ("ul", "ur", "ll", "lr"):
            if c > 1:
                self._triangle(self.tri[kind][:, :hp], run, c, kind)
                tri[kind] = self.tri[kind][:, :hp]
            else:
                tri[kind] = mom
        sums = self.sums

        def at(a: np.ndarray, dr: int, dc: int, rows: int = h, cols: int = w) -> np.ndarray:
            return a[:, dr : dr + rows, dc : dc + cols]

        # 4 left (and 0 right, read c columns on): two stacked squares minus the shared row segment.
        left = sums[4, :, :h, : w + c]
        np.add(at(sq, 0, 0, h, w + c), at(sq, c, 0, h, w + c), out=left)
        np.subtract(left, at(run[q], c, 0, h, w + c), out=left)
        # 2 top (and 6 bottom, read c rows down): two side-by-side squares minus the shared column.
        top = sums[2, :, : h + c, :w]
        np.add(at(sq, 0, 0, h + c, w), at(sq, 0, c, h + c, w), out=top)
        np.subtract(top, at(colseg, 0, c, h + c, w), out=top)
        # Diagonal halves: a square plus two small triangles.
        for m, (sr, sc), kind, (r1, c1), (r2, c2) in (
            (3, (0, 0), "ul", (0, q), (q, 0)),
            (7, (c, c), "lr", (0, q), (q, 0)),
            (1, (0, c), "ur", (0, 0), (q, q)),
            (5, (c, 0), "ll", (0, 0), (q, q)),
        ):
            out = sums[m, :, :h, :w]
            np.add(at(sq, sr, sc), at(tri[kind], r1, c1), out=out)
            np.add(out, at(tri[kind], r2, c2), out=out)

        # Indices are in range by construction; mode="clip" skips numpy's slower bounds-raising path.
        flat_sums = sums.reshape(-1)
        idx = np.take(self.mask_offset, choice, mode="clip")
        idx += self.sum_base[:h]
        total = np.take(flat_sums, idx, mode="clip")
        idx += self.moment_stride
        total_sq = np.take(flat_sums, idx, mode="clip")

        count = n * (c + 1)
        mean = total
        mean *= np.float32(1.0 / count)
        var = total_sq
        var *= np.float32(1.0 / count)
        mean_sq = mean * mean
        var -= mean_sq
        # gain = max(0, var - mean^2 / looks) / (var (1 + 1/looks)); the floor keeps 0/0 at 0.
        mean_sq *= np.float32(-self.sigma2)
        mean_sq += var
        np.maximum(mean_sq, 0.0, out=mean_sq)
        var *= np.float32(1.0 + self.sigma2)
        np.maximum(var, np.finfo(np.float32).tiny, out=var)
        mean_sq /= var
        out = padded[c : c + h, c : c + w] - mean
        out *= mean_sq
        out += mean
        return out


def refined_lee(intensity: np.ndarray, window: int = 7, looks: float = 1.0) -> np.ndarray:
    """Refined Lee speckle filter of a 2-D intensity image (see the module docstring).

    Args:
        intensity: linear intensity (power), shape ``(H, W)``.
        window: odd window size in 3..31.
        looks: equivalent number of looks of the input (speckle variance ``1 / looks``).

    Returns:
        float32 array of the same shape.
    """
    n = check_window(window)
    looks = _check_looks(looks)
    img = _check_image(intensity)
    height, width = img.shape
    rows_per_chunk = min(height, max(8, _CHUNK_PIXELS // max(width, 1)))
    chunker = _RefinedLeeChunker(n, rows_per_chunk, width, looks)
    out = np.empty((height, width), dtype=np.float32)
    for r0 in range(0, height, rows_per_chunk):
        r1 = min(height, r0 + rows_per_chunk)
        out[r0:r1] = chunker(img, r0, r1)
    return out


def boxcar(intensity: np.ndarray, window: int = 7) -> np.ndarray:
    """Boxcar (moving-average) filter over a ``window x window`` square, mirror-reflected borders."""
    from scipy.ndimage import uniform_filter

    n = check_window(window)
    img = _check_image(intensity)
    return uniform_filter(img.astype(np.float64), size=n, mode="mirror").astype(np.float32)


def lee(intensity: np.ndarray, window: int = 7, looks: float = 1.0) -> np.ndarray:
    """Lee's (1980) local-statistics MMSE filter over the full ``window x window`` square.

    ``out = m + b (z - m)`` with the local mean ``m`` and variance ``v`` and
    ``b = max(0, (v - m^2 / looks) / (v (1 + 1 / looks)))``.
    """
    from scipy.ndimage import uniform_filter

    n = check_window(window)
    sigma2 = 1.0 / _check_looks(looks)
    img = _check_image(intensity).astype(np.float64)
    mean = uniform_filter(img, size=n, mode="mirror")
    var = uniform_filter(img * img, size=n, mode="mirror") - mean * mean
    num = var - mean * mean * sigma2
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(num > 0, num / (var * (1.0 + sigma2)), 0.0)
    return (mean + gain * (img - mean)).astype(np.float32)
