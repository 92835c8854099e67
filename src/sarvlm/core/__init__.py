"""The ground floor of sarvlm: value types and helpers every layer shares.

Nothing here imports any other part of sarvlm (an import-linter contract checks it):
errors, the sample record and its georeference, instruction examples and predictions,
box coordinate conventions, JSONL reading/writing, atomic outputs and progress display.
"""
