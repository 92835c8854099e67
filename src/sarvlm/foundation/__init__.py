"""FUSAR-KLIP: a BLIP-style SAR image-text foundation model (paper 004, §3.3-3.4, Algorithm 1).

One concept per file:

======================  ==================================================================
``config``              :class:`KlipConfig` and the named configs in ``configs/*.yaml``
``tokenizer``           offline WordPiece tokenizer with BLIP's [ENC]/[DEC] tokens
``transforms``          SAR image -> single-channel tensor (dB window, resize)
``data``                sample records -> 8-field texts + images (``KlipDataset``)
``momentum``            momentum-distillation and shared-queue mixins (LAVIS style)
``losses``              ITC with queue + soft targets, ITM hard negatives, MLM masking
``model``               :class:`KlipModel` (ViT + one BLIP text encoder used three ways)
``checkpoint``          the saved form both models share (config.json + safetensors + tokenizer)
``pretrain``            ``sarvlm pretrain`` on Accelerate, with resume and SCIO phases
``scio``                SCIO phase 2 (screening) and phase 3 (reconstruction)
``retrieval``           ITC top-k + ITM re-rank retrieval, BLIP's recall metrics
``zeroshot``            zero-shot classification from prompt templates
``probe``               linear probe and k-NN on frozen image features
``backbone``            export of the image tower as a plain ``ViTModel`` + hand-off
``segmentation``        segmentation heads (linear, mask transformer) on the image tower
``mask_transformer``    Segmenter's mask-transformer decoder
``decoder_data``        caption / VQA items from instruction examples or records
``decoder_model``       the fine-tunable decoder (BLIP ``blip_decoder`` / ``blip_vqa`` style)
``finetune_decoder``    ``sarvlm finetune-caption`` / ``sarvlm caption`` (Table 5 settings)
======================  ==================================================================

This package sits beside ``models``/``training``: it imports ``core``, ``io``, ``synth``-free
data helpers only, and nothing above ``training``.
"""
