"""Evaluation: scoring runs over the task registry, LLM judges, reports and plots.

The metric functions live in :mod:`sarvlm.metrics` and the answer parsers in :mod:`sarvlm.tasks`;
they are re-exported here for convenience. Public API (see docs/evaluation.md)::

    from sarvlm.eval import (caption_scores, vqa_accuracy, count_scores, grid_scores,
        classification_scores, detection_scores, segmentation_scores, retrieval_scores,
        parse_prediction, evaluate, compare, LLMJudge)
"""

from sarvlm.eval.evaluate import evaluate
from sarvlm.eval.judges import LLMJudge, five_dimension_scores, sarlang_binary_judgements
from sarvlm.eval.report import compare
from sarvlm.metrics.caption import caption_scores
from sarvlm.metrics.classification import classification_scores, multilabel_scores
from sarvlm.metrics.counting import count_scores
from sarvlm.metrics.detection import coco_map50, detection_scores
from sarvlm.metrics.grid import grid_scores
from sarvlm.metrics.retrieval import retrieval_scores
from sarvlm.metrics.segmentation import segmentation_scores
from sarvlm.metrics.vqa import normalize_answer, vqa_accuracy
from sarvlm.tasks.registry import parse_prediction

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
