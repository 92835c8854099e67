"""Sample records, instruction examples and dataset building."""

from sarvlm.core.record import (
    Caption,
    Dialogue,
    GeoRef,
    GroundControlPoint,
    LandCover,
    ObjectAnnotation,
    QAPair,
    SampleRecord,
    Turn,
    read_samples,
    write_samples,
)

__all__ = [
    "Caption",
    "Dialogue",
    "GeoRef",
    "GroundControlPoint",
    "LandCover",
    "ObjectAnnotation",
    "QAPair",
    "SampleRecord",
    "Turn",
    "read_samples",
    "write_samples",
]
