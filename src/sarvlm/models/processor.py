"""SarvlmProcessor: Qwen tokenizer + Qwen2-VL image processor (PIL backend, no torchvision).

``encode`` turns chat messages whose content marks images with ``<image>`` (sarvlm's export
format) into model inputs: token ids with each image expanded to its merged-token count,
the assistant-token mask for the loss, ``mm_token_type_ids`` (0 text, 1 image), pixel values
and ``image_grid_thw``. For the ``concat`` fusion it also reserves S prior placeholder tokens
per image, so a collator never needs to know which fusion a model uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.example import IMAGE_PLACEHOLDER, Message
from sarvlm.models.settings import SarvlmSettings
from sarvlm.models.tokenizer import (
    GEO_PAD,
    IM_END,
    IMAGE_PAD,
    PAD,
    QWEN_SPECIAL_TOKENS,
    VISION_END,
    VISION_START,
    chat_template,
)

# Patch sizes of the vision towers (Qwen2.5-VL: 14 px, Qwen3-VL: 16 px) and their normalisation.
BACKBONE_IMAGE_DEFAULTS = {
    "qwen2.5-vl": {
        "patch_size": 14,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    },
    "qwen3-vl": {"patch_size": 16, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
}
STRETCH_PERCENTILES = (2.0, 98.0)


def make_image_processor(settings: SarvlmSettings, **overrides: Any) -> Any:
    """A ``Qwen2VLImageProcessorPil`` for a backbone, bounded by the settings' min/max pixels.

    ``overrides`` (``patch_size``, ``merge_size``, ``temporal_patch_size``, ``image_mean``,
    ``image_std``) replace the backbone defaults, e.g. with a checkpoint's preprocessor_config.
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    kwargs: dict[str, Any] = {"merge_size": 2, "temporal_patch_size": 2, **BACKBONE_IMAGE_DEFAULTS[settings.backbone]}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": settings.min_pixels, "longest_edge": settings.max_pixels}, **kwargs
    )


def stretch_to_uint8(data: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> np.ndarray:
    """Linear stretch of a float array between two percentiles of its finite values, to uint8."""
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, dtype=np.uint8)
    lo, hi = np.percentile(data[finite], percentiles)
    scaled = (np.where(finite, data, lo) - lo) / (hi - lo) if hi > lo else np.zeros(data.shape)
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def raster_to_image(data: np.ndarray) -> Image.Image:
    """The model's view of raster pixels ``(bands, H, W)``: uint8 as they are, anything else
    with a 2–98 percentile linear stretch; one band → grey, three or more → RGB of the first
    three, two (dual-pol) → the first band."""
    bands = data[:3] if data.shape[0] >= 3 else data[:1]
    pixels = bands if bands.dtype == np.uint8 else stretch_to_uint8(bands.astype(np.float64))
    array = pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)
    return Image.fromarray(np.ascontiguousarray(array))


def load_image(path: str | Path) -> Image.Image:
    """Open an image for the model: PNG/JPEG as they are (Pillow; no rasterio needed); GeoTIFF through
    ``sarvlm.io.raster`` (rasterio).

    GeoTIFF pixels that are not uint8 (SAR intensity, amplitude or dB floats) get a 2–98
    percentile linear stretch per file. One band → grey, three or more → RGB of the first
    three, two (dual-pol) → the first band.
    """
    from sarvlm.io.pillow_image import open_pillow_image
    from sarvlm.io.raster import allowed_driver, read_raster

    path = Path(path)
    if not path.exists():
        raise SarvlmError(f"{path}: no such image file")
    driver = allowed_driver(path)  # local file, signature, driver allow-list: no GDAL needed
    if driver in ("PNG", "JPEG"):  # Pillow alone (a machine without rasterio reads them too)
        with open_pillow_image(path, driver, like_gdal=False) as img:  # size limit, before decoding
            try:
                img.load()
                return img.convert("RGB") if img.mode not in ("L", "RGB") else img.copy()
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise InputError(f"{path}: cannot read image ({exc})") from None
    data = read_raster(path)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).any():
        raise SarvlmError(f"{path}: all pixels are NaN or infinite")
    return raster_to_image(data)


def _message_dict(message: dict[str, Any] | Message) -> dict[str, str]:
    if isinstance(message, Message):
        return {"role": message.role, "content": message.content}
    if not isinstance(message, dict) or "role" not in message or not isinstance(message.get("content"), str):
        raise InputError(f"message {message!r}: needs a role and a string content")
    return {"role": message["role"], "content": message["content"]}


class SarvlmProcessor:
    """Tokenizer + image processor for a sarvlm model, configured by its :class:`SarvlmSettings`."""

    def __init__(self, tokenizer: Any, image_processor: Any, settings: SarvlmSettings) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.settings = settings
        self.tokenizer.chat_template = chat_template(settings.backbone)
        ids = tokenizer.convert_tokens_to_ids([IMAGE_PAD, VISION_START, VISION_END, GEO_PAD, IM_END, PAD])
        unknown = [
            tok
            for tok, i in zip((IMAGE_PAD, VISION_START, VISION_END, GEO_PAD, IM_END, PAD), ids)
            if i is None or i == tokenizer.unk_token_id
        ]
        if unknown:
            raise InputError(f"tokenizer: missing Qwen special token {unknown[0]} (not a Qwen-VL tokenizer?)")
        self.image_token_id, self.vision_start_id, self.vision_end_id, self.geo_token_id, self.eos_token_id, _ = ids
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids[-1]
        self.merge_size = int(image_processor.merge_size)

    # -- images ---------------------------------------------------------------------------
    load_image = staticmethod(load_image)

    def resize_image(self, image: Image.Image) -> np.ndarray:
        """``image`` decoded and resized exactly as the image processor does before rescaling:
        ``(3, H', W')`` uint8, H' and W' multiples of patch × merge (``smart_resize``). Passing such
        arrays to :meth:`image_inputs` gives the same ``pixel_values`` as passing the image."""
        from transformers.image_utils import SizeDict

        ip = self.image_processor
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        array = ip.process_image(rgb, do_convert_rgb=True)
        size = ip.size if isinstance(ip.size, SizeDict) else SizeDict(**ip.size)
        return np.ascontiguousarray(
            ip.resize(array, size=size, resample=ip.resample, factor=ip.patch_size * ip.merge_size)
        )

    def image_inputs(self, images: Sequence[Image.Image | np.ndarray]) -> dict[str, torch.Tensor]:
        """``pixel_values`` (patches, C·T·P·P) and ``image_grid_thw`` (N_img, 3) for a list of images
        (PIL images, or arrays from :meth:`resize_image`, e.g. read from an image cache)."""
        if any(isinstance(img, np.ndarray) for img in images):
            arrays = [img if isinstance(img, np.ndarray) else self.resize_image(img) for img in images]
            out = self.image_processor(
                arrays, do_resize=False, do_convert_rgb=False, input_data_format="channels_first", return_tensors="pt"
            )
        else:
            pil = [img for img in images if isinstance(img, Image.Image)]
            rgb = [img if img.mode == "RGB" else img.convert("RGB") for img in pil]
            out = self.image_processor(rgb, return_tensors="pt")
        return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}

    def tokens_per_image(self, image_grid_thw: torch.Tensor) -> list[int]:
        return (image_grid_thw.prod(-1) // self.merge_size**2).tolist()

    # -- text -----------------------------------------------------------------------------
    def _image_markup(self) -> str:
        geo = GEO_PAD * self.settings.num_prior_tokens if self.settings.fusion == "concat" else ""
        return VISION_START + IMAGE_PAD + geo + VISION_END

    def encode(
        self,
        messages: Sequence[dict[str, Any] | Message],
        images: Sequence[Image.Image | np.ndarray],
        add_generation_prompt: bool = False,
    ) -> dict[str, Any]:
        """Model inputs for one conversation.

        Returns a dict with ``input_ids`` (list[int]), ``assistant_mask`` (list[bool], True on every
        assistant turn's content and its ``<|im_end|>``), ``mm_token_type_ids`` (list[int]),
        ``pixel_values`` and ``image_grid_thw`` (tensors; ``None`` without images).
        """
        msgs = [_message_dict(m) for m in messages]
        for m in msgs:
            for special in QWEN_SPECIAL_TOKENS:
                if special in m["content"]:
                    raise InputError(f"message content contains the reserved token {special}")
        n_placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in msgs)
        if n_placeholders != len(images):
            raise InputError(
                f"messages have {n_placeholders} {IMAGE_PLACEHOLDER} placeholder(s) but {len(images)} image(s) were given"
            )
        markup = self._image_markup()
        rendered = [{"role": m["role"], "content": m["content"].replace(IMAGE_PLACEHOLDER, markup)} for m in msgs]
        enc = self.tokenizer.apply_chat_template(
            rendered,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            add_generation_prompt=add_generation_prompt,
        )
        ids, mask = list(enc["input_ids"]), [bool(v) for v in enc["assistant_masks"]]
        pixel_values = image_grid_thw = None
        counts: list[int] = []
        if images:
            vis = self.image_inputs(images)
            pixel_values, image_grid_thw = vis["pixel_values"], vis["image_grid_thw"]
            counts = self.tokens_per_image(image_grid_thw)
        input_ids: list[int] = []
        assistant_mask: list[bool] = []
        token_types: list[int] = []
        next_image = 0
        for tok, in_answer in zip(ids, mask):
            if tok == self.image_token_id:
                n = counts[next_image]
                next_image += 1
                input_ids.extend([tok] * n)
                assistant_mask.extend([False] * n)
                token_types.extend([1] * n)
            else:
                input_ids.append(tok)
                assistant_mask.append(in_answer)
                token_types.append(0)
        return {
            "input_ids": input_ids,
            "assistant_mask": assistant_mask,
            "mm_token_type_ids": token_types,
            "pixel_values": pixel_values,
            "image_grid_thw": image_grid_thw,
        }

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    # -- persistence ----------------------------------------------------------------------
    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write the tokenizer (with the chat template) and ``preprocessor_config.json``."""
        self.tokenizer.save_pretrained(str(out_dir))
        self.image_processor.save_pretrained(str(out_dir))

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, settings: SarvlmSettings) -> SarvlmProcessor:
        """Tokenizer from ``model_dir`` and an image processor from its preprocessor_config.json
        (or built from the settings), resize bounds taken from the settings."""
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"{model_dir}: cannot load the tokenizer ({str(exc).splitlines()[0]})") from None
        overrides: dict[str, Any] = {}
        pre = model_dir / "preprocessor_config.json"
        if pre.exists():
            try:
                cfg = json.loads(pre.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InputError(f"{pre}: malformed JSON ({exc.msg})") from None
            overrides = {
                k: cfg[k]
                for k in ("image_mean", "image_std", "patch_size", "merge_size", "temporal_patch_size")
                if k in cfg
            }
        return cls(tokenizer, make_image_processor(settings, **overrides), settings)
