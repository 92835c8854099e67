"""FUSAR-GEOVL-style 8-field captions of synthetic scenes, with recorded corruptions.

The implementation lives in :mod:`sarvlm.tasks.geovl` so that the builder (``sarvlm build
--geovl-corrupt``) uses the very same code as ``sarvlm synth --geovl-corrupt``; this module keeps
the synthetic world's import path.
"""

from __future__ import annotations

from sarvlm.tasks.geovl import (
    CORRUPTION_KINDS,
    GEOVL_FIELDS,
    LAND_CLASSES,
    add_geovl_captions,
    geovl_record,
    scene_fields,
    swap_pool,
)

__all__ = [
    "CORRUPTION_KINDS",
    "GEOVL_FIELDS",
    "LAND_CLASSES",
    "add_geovl_captions",
    "geovl_record",
    "scene_fields",
    "swap_pool",
]
