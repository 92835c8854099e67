"""The built-in synthetic SAR world: scenes, annotations, optical pairs and an AlphaEarth-layout field.

``generate_world(out_dir, scenes, seed, ...)`` writes a dataset directory (see
docs/synthetic-world.md); the modules below are its parts, one concept each:

- :mod:`~sarvlm.synth.footprint`: where scenes lie (UTM cells in sites across two zones)
- :mod:`~sarvlm.synth.landcover`: land-cover layouts with spatial structure
- :mod:`~sarvlm.synth.backscatter`: σ0 per class, texture, point scatterers, speckle
- :mod:`~sarvlm.synth.target_shapes` / :mod:`~sarvlm.synth.targets`: what targets look like, where they go
- :mod:`~sarvlm.synth.optical`: the paired optical rendering
- :mod:`~sarvlm.synth.embedding_field`: the 64-d embedding field
- :mod:`~sarvlm.synth.captions`: template captions
- :mod:`~sarvlm.synth.preview`: a one-figure look at a scene
"""

from sarvlm.synth.landcover import CLASSES
from sarvlm.synth.world import WorldSummary, generate_world, make_scene

__all__ = ["CLASSES", "WorldSummary", "generate_world", "make_scene"]
