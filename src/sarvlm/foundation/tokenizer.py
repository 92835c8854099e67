"""Offline text tokenizer for KLIP: a BERT WordPiece tokenizer plus BLIP's [ENC] and [DEC] tokens.

From scratch, the WordPiece vocabulary is built from the pretraining texts themselves,
deterministically (see :func:`train_tokenizer`). With ``text.init_from`` the
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
    """A lower-casing WordPiece tokenizer whose vocabulary comes from ``texts``, deterministically.

    Vocabulary: the special tokens, every character seen (alone and as ``##c`` continuation, so any
    word over those characters can be spelled), then whole words by descending frequency (ties by
    the word) up to ``vocab_size``. (The ``tokenizers`` WordPiece trainer breaks frequency ties in
    hash order, so two runs could differ; this does not.)
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for t in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    chars = sorted({c for w in words for c in w})
    vocab = list(SPECIAL_TOKENS) + chars + [f"##{c}" for c in chars]
    seen = set(vocab)
    for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if w not in seen:
            vocab.append(w)
            seen.add(w)
    tok = Tokenizer(models.WordPiece(vocab={w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
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
