"""SAR preprocessing: polarisation, conversions, speckle filters, contrast, quantisation, tiling, screening.

Stable public names (documented in docs/preprocessing.md): :func:`refined_lee`, :func:`lee`,
:func:`boxcar`, :func:`to_db`, :func:`stretch`, :func:`quantize_uint8` and the rest exported below.
"""

from sarvlm.preprocess.speckle import boxcar, lee, refined_lee

__all__ = ["boxcar", "lee", "refined_lee"]
