"""LLM-assisted annotation: HCoT knowledge chains, FUSAR-GEOVL structured captions, LunarOS structured
prompts and dialogues, SARLANG-1M modality transfer — on any OpenAI-compatible endpoint, with an
offline default. See docs/annotation.md; the CLI is ``sarvlm annotate``.

Layer: above ``priors`` and below ``models`` (it reads replies with the answer readers of ``tasks`` and
the words of ``core.vocabulary``); the HTTP client it shares with the LLM judges is
:mod:`sarvlm.core.llm_client`.
"""
