"""Evaluation: answer parsing, the papers' metrics, LLM judges, reports.

Public API (see docs/evaluation.md)::

    from sarvlm.eval import (caption_scores, vqa_accuracy, count_scores, grid_scores,
        classification_scores, detection_scores, segmentation_scores, retrieval_scores,
        parse_prediction, evaluate, compare, LLMJudge)
"""

from sarvlm.eval.caption import caption_scores
from sarvlm.eval.classification import classification_scores, multilabel_scores
from sarvlm.eval.counting import count_scores
from sarvlm.eval.detection import coco_map50, detection_scores
from sarvlm.eval.evaluate import evaluate
from sarvlm.eval.grid import grid_scores
from sarvlm.eval.judges import LLMJudge, five_dimension_scores, sarlang_binary_judgements
from sarvlm.eval.parsing import parse_prediction
from sarvlm.eval.report import compare
from sarvlm.eval.retrieval import retrieval_scores
from sarvlm.eval.segmentation import segmentation_scores
from sarvlm.eval.vqa import normalize_answer, vqa_accuracy

__all__ = [
    "LLMJudge",
    "caption_scores",
    "classification_scores",
    "coco_map50",
    "compare",
    "count_scores",
    "detection_scores",
    "evaluate",
    "five_dimension_scores",
    "grid_scores",
    "multilabel_scores",
    "normalize_answer",
    "parse_prediction",
    "retrieval_scores",
    "sarlang_binary_judgements",
    "segmentation_scores",
    "vqa_accuracy",
]
