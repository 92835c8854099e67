"""sarvlm: teach vision-language models to understand SAR imagery.

Layers, lowest first (docs/architecture.md; checked by import-linter, see pyproject.toml):
core -> io | metrics -> preprocess -> tasks -> data | synth -> priors -> models -> training -> eval
-> inference -> demo -> cli.
"""

__version__ = "0.2.0.dev0"
