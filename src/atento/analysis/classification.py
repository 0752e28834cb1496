"""Classification scores: accuracy, macro-F1 and the confusion matrix.

    report = classification_report(gold, predicted, labels)
    report["confusion_matrix"][i][j]   # examples of class labels[i] predicted as labels[j]

Macro-F1 is the unweighted mean of the per-class F1 = 2 P R / (P + R) over the classes that
occur among the gold labels or the predictions (as scikit-learn's `f1_score(average="macro")`
with its default labels); a class with no true positive has F1 = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def confusion_matrix(gold: Sequence[int], predicted: Sequence[int], n: int) -> list[list[int]]:
    """(n, n) counts: rows are gold classes, columns predicted ones."""
    matrix = [[0] * n for _ in range(n)]
    for g, p in zip(gold, predicted, strict=True):
        matrix[g][p] += 1
    return matrix


def f1_scores(matrix: list[list[int]]) -> list[float | None]:
    """Per-class F1 from a confusion matrix; None for a class absent from gold and predictions."""
    n = len(matrix)
    scores: list[float | None] = []
    for c in range(n):
        tp = matrix[c][c]
        gold = sum(matrix[c])
        predicted = sum(matrix[r][c] for r in range(n))
        if gold == 0 and predicted == 0:
            scores.append(None)
        else:
            scores.append(2 * tp / (gold + predicted))  # = 2PR / (P + R)
    return scores


def classification_report(
    gold: Sequence[int], predicted: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class F1 and the confusion matrix (module doc)."""
    matrix = confusion_matrix(gold, predicted, len(labels))
    f1 = f1_scores(matrix)
    present = [s for s in f1 if s is not None]
    correct = sum(matrix[c][c] for c in range(len(labels)))
    return {
        "accuracy": correct / max(len(gold), 1),
        "macro_f1": sum(present) / max(len(present), 1),
        "f1": {label: s for label, s in zip(labels, f1, strict=True) if s is not None},
        "labels": list(labels),
        "confusion_matrix": matrix,
    }
