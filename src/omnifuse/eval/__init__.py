"""Evaluation: metrics, linear probes, plots and the HTML report.

Evaluators by name (`retrieval`, `classification`, `token_labels`; a model kind's spec names its own), and
pure functions of tensors, arrays and metric rows; nothing here imports the training loop. scikit-learn, matplotlib and Pillow are imported only when a function needs them.
"""

from omnifuse.eval.base import Evaluator
from omnifuse.eval.captioning import CaptionerEvaluator
from omnifuse.eval.classification import ClassifierEvaluator
from omnifuse.eval.evaluator import DualEncoderEvaluator
from omnifuse.eval.linear_probe import linear_probe
from omnifuse.eval.metrics import (
    bidirectional_retrieval,
    classification_report,
    confusion_matrix,
    retrieval_metrics,
    retrieval_ranks,
    topk_accuracy,
)
from omnifuse.eval.plots import plot_confusion_matrix, plot_curves
from omnifuse.eval.registry import EVALUATORS, build_evaluator, get_evaluator, register_evaluator
from omnifuse.eval.report import (
    ImageSection,
    ReportSection,
    RetrievalExample,
    RetrievalGridSection,
    TableSection,
    TextSection,
    format_table,
    image_data_uri,
    render_report,
    write_report,
)
from omnifuse.eval.token_labels import TokenLabelEvaluator

__all__ = [
    "EVALUATORS",
    "CaptionerEvaluator",
    "ClassifierEvaluator",
    "DualEncoderEvaluator",
    "Evaluator",
    "TokenLabelEvaluator",
    "build_evaluator",
    "get_evaluator",
    "register_evaluator",
    "ImageSection",
    "ReportSection",
    "RetrievalExample",
    "RetrievalGridSection",
    "TableSection",
    "TextSection",
    "bidirectional_retrieval",
    "classification_report",
    "confusion_matrix",
    "format_table",
    "image_data_uri",
    "linear_probe",
    "plot_confusion_matrix",
    "plot_curves",
    "render_report",
    "retrieval_metrics",
    "retrieval_ranks",
    "topk_accuracy",
    "write_report",
]
