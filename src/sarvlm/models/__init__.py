"""FUSAR-GPT's geospatial-prior fusion on Qwen2.5-VL / Qwen3-VL (see docs/models.md).

- :mod:`sarvlm.models.tlm` — ``TLM`` (Eq. 4–11); :mod:`sarvlm.models.fusion` — ``sum``/``concat``/``none`` ablations.
- :mod:`sarvlm.models.settings` — ``SarvlmSettings``, saved in every model's config.
- :mod:`sarvlm.models.qwen2_5_vl`, :mod:`sarvlm.models.qwen3_vl` — the backbones with ``model.model.geo_fusion``.
- :mod:`sarvlm.models.processor` — ``SarvlmProcessor``; :mod:`sarvlm.models.tokenizer` — Qwen tokens and chat template.
- :mod:`sarvlm.models.tiny` — ``tiny-qwen2.5-vl`` / ``tiny-qwen3-vl``; :mod:`sarvlm.models.loading` — ``load_model``, ``save_model``.

Nothing is imported here, so ``import sarvlm.models`` stays cheap.
"""
