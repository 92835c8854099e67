"""COCO detection annotations (SARDet-100k, SSDD, HRSID, SAR-AIRcraft style) -> sample records.

``images[]`` give ``id``, ``file_name``, ``width``, ``height``; ``annotations[]`` give ``image_id``,
``category_id``, ``bbox`` ``[x, y, w, h]`` (converted to ``[x1, y1, x2, y2]``), ``iscrowd`` and an
optional polygon ``segmentation`` (the first polygon is kept); ``categories[]`` give ``id``, ``name``
and ``supercategory``. ``images[].date_captured`` (any timestamp starting ``YYYY-MM-DD``) becomes
the record's date. With ``fine_from_supercategory`` (SAR-AIRcraft-style files whose names are
aircraft types), the supercategory becomes the category and the name the fine category.

Images without annotations become records without objects (background samples). An annotation for
an image id that is not listed, an unknown category id, or a negative width/height is an error
naming the annotation. Boxes reaching outside the image are kept as given and clipped or dropped
(and counted) by the builder's quality control.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sarvlm.core.errors import InputError, SarvlmError
from sarvlm.core.record import SampleRecord
from sarvlm.data.importers.common import ImportContext, load_json


def read_coco(src: Path, ctx: ImportContext, fine_from_supercategory: bool = False) -> Iterator[SampleRecord]:
    """Stream sample records from a COCO JSON file (one record per image, in ``images`` order)."""
    data = load_json(src)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{src}: not a COCO file (no 'images' list)")
    cats: dict[int, tuple[str, str | None]] = {}
    for i, c in enumerate(data.get("categories") or []):
        try:
            name, sup = str(c["name"]), c.get("supercategory")
            cats[int(c["id"])] = (str(sup), name) if fine_from_supercategory and sup else (name, None)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{src}: categories[{i}]: needs 'id' and 'name'") from None
    images: dict[int, dict] = {}
    for i, im in enumerate(data["images"]):
        try:
            image_id = int(im["id"])
            str(im["file_name"])
        except (KeyError, TypeError, ValueError):
            raise SarvlmError(f"{src}: images[{i}]: needs 'id' and 'file_name'") from None
        if image_id in images:
            # a second image with the same id would silently replace the first
            raise SarvlmError(f"{src}: images[{i}]: duplicate image id {image_id} ({im['file_name']})")
        images[image_id] = im
    objects: dict[int, list[dict]] = defaultdict(list)
    for i, ann in enumerate(data.get("annotations") or []):
        who = f"{src}: annotations[{i}] (id {ann.get('id')})" if isinstance(ann, dict) else f"{src}: annotations[{i}]"
        try:
            image_id, cat_id = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{who}: needs image_id, category_id and bbox [x, y, w, h]") from None
        if image_id not in images:
            raise InputError(f"{who}: image_id: no image with id {image_id}")
        if cat_id not in cats:
            raise InputError(f"{who}: category_id: no category with id {cat_id}")
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise InputError(f"{who}: bbox: non-finite number")
        if w < 0 or h < 0:
            raise InputError(f"{who}: bbox: negative size (w={w:g}, h={h:g})")
        cat, fine = cats[cat_id]
        obj: dict[str, Any] = {"category": cat, "bbox": [x, y, x + w, y + h]}
        if fine:
            obj["fine_category"] = fine
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg and isinstance(seg[0], list) and len(seg[0]) >= 6 and len(seg[0]) % 2 == 0:
            obj["polygon"] = [float(v) for v in seg[0]]
        if ann.get("iscrowd"):
            obj["iscrowd"] = True
        if "id" in ann:
            obj["id"] = str(ann["id"])
        objects[image_id].append(obj)
    for image_id, im in images.items():
        who = f"{src}: images (id {image_id}, {im['file_name']})"
        info = ctx.image(str(im["file_name"]), who, im.get("width"), im.get("height"))
        if info is None:
            continue
        extra = {"date": im["date_captured"]} if im.get("date_captured") else {}
        yield ctx.record(
            str(im["file_name"]),
            info,
            who,
            objects=objects.get(image_id, []),
            meta={"coco_image_id": image_id},
            **extra,
        )
