"""Offline text tokenizer for KLIP: a BERT WordPiece tokenizer plus BLIP's [ENC] and [DEC] tokens.

From scratch, the WordPiece vocabulary is trained (``tokenizers``) on the pretraining texts
themselves, deterministically (sorted input, fixed size). With ``text.init_from`` the
checkpoint's own tokenizer is used (e.g. all-MiniLM-L6-v2's uncased BERT vocabulary). Either
way the tokenizer is saved inside every checkpoint (``tokenizer/``), so a model never depends
on the data it was trained on to be read back.

Roles of the special tokens (as in BLIP): [CLS] starts unimodal texts (ITC), [ENC] replaces it
for the image-grounded encoder (ITM, MLM), [DEC] starts decoder inputs (captioning).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sarvlm.core.errors import ConfigurationError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ENC_TOKEN, DEC_TOKEN = "[ENC]", "[DEC]"


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A lower-casing WordPiece tokenizer trained on ``texts`` (same texts -> same vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), min_frequency=1, show_progress=False
    )
    tok.train_from_iterator(sorted(set(texts)), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    return add_klip_tokens(fast)


def add_klip_tokens(tokenizer):
    """Add [ENC]/[DEC] (idempotent) and return the tokenizer."""
    missing = [t for t in (ENC_TOKEN, DEC_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    for needed in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id"):
        if getattr(tokenizer, needed, None) is None:
            raise ConfigurationError(f"tokenizer has no {needed.removesuffix('_id')} (need a BERT-style tokenizer)")
    return tokenizer


def load_tokenizer(directory: str | Path):
    """The tokenizer saved in a checkpoint or shipped with a Hugging Face text checkpoint."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(directory))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{directory}: no usable tokenizer ({str(exc).splitlines()[0]})") from None
    return add_klip_tokens(tok)


def special_ids(tokenizer) -> dict[str, int]:
    """Ids of the special tokens KLIP uses."""
    vocab = tokenizer.get_vocab()
    return {
        "pad": tokenizer.pad_token_id,
        "cls": tokenizer.cls_token_id,
        "sep": tokenizer.sep_token_id,
        "mask": tokenizer.mask_token_id,
        "enc": vocab[ENC_TOKEN],
        "dec": vocab[DEC_TOKEN],
    }
