"""SAR preprocessing: polarisation, conversions, speckle filters, contrast, quantisation, tiling, screening.

Stable public names (documented in docs/preprocessing.md): :func:`refined_lee`, :func:`lee`,
:func:`boxcar`, :func:`to_db`, :func:`stretch`, :func:`quantize_uint8` and the rest exported below.
"""

from sarvlm.preprocess.contrast import log_transform, percentile_range, stretch
from sarvlm.preprocess.conversions import convert, to_amplitude, to_db, to_intensity
from sarvlm.preprocess.polarization import dual_pol_composite, normalize_polarization, select_polarization
from sarvlm.preprocess.quantize import quantize_uint8
from sarvlm.preprocess.speckle import boxcar, lee, refined_lee

__all__ = [
    "boxcar",
    "convert",
    "dual_pol_composite",
    "lee",
    "log_transform",
    "normalize_polarization",
    "percentile_range",
    "quantize_uint8",
    "refined_lee",
    "select_polarization",
    "stretch",
    "to_amplitude",
    "to_db",
    "to_intensity",
]
