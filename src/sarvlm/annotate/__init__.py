"""LLM-assisted annotation: HCoT knowledge chains, FUSAR-GEOVL structured captions, LunarOS structured
prompts and dialogues, SARLANG-1M modality transfer — on any OpenAI-compatible endpoint, with an
offline default. See docs/annotation.md; the CLI is ``sarvlm annotate``.

Layer: above ``eval`` (it reads text with evaluation's parser) and below ``inference``; the HTTP
client it shares with the LLM judges is :mod:`sarvlm.core.llm_client`.
"""
