"""sarvlm: teach vision-language models to understand SAR imagery.

Layers follow the data's path (see docs/architecture.md):
io -> preprocess -> synth/data -> priors -> models -> training -> eval -> inference.
"""

__version__ = "0.2.0.dev0"
