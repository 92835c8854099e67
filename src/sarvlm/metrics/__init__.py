"""The papers' metrics as pure functions of references and parsed answers (no files, no models).

``counting`` (accuracy, MAE), ``grid`` (Acc@100/Acc@50/Top1), ``classification`` (top-1/top-3,
per class, multi-label P/R/F1), ``detection`` (P/R/F1 at IoU thresholds, COCO mAP@50),
``caption`` (pycocoevalcap BLEU/ROUGE-L/CIDEr-D/METEOR/SPICE), ``ptb_tokenizer`` (the PTB
tokenizer in Python), ``vqa`` (exact match, SARLANG-1M protocol), ``segmentation`` (OA/mIoU),
``retrieval`` (R@K). The layer imports only :mod:`sarvlm.core`, so task scorers
(:mod:`sarvlm.tasks.scoring`) and evaluation both use it.
"""
