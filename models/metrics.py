"""Classification metrics used by training and evaluation (no sklearn needed)."""

from __future__ import annotations


def classification_report(gold: list[int], pred: list[int], labels: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1, macro-recall, macro-F1 and the confusion matrix.

    Classes that never occur in ``gold`` (e.g. neutral in a two-class set) are
    left out of the macro averages.
    """
    n = len(labels)
    confusion = [[0] * n for _ in range(n)]
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    per_class = {}
    present = []
    for i, label in enumerate(labels):
        tp = confusion[i][i]
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support:
            present.append(label)
    total = len(gold)
    return {
        "n": total,
        "accuracy": sum(confusion[i][i] for i in range(n)) / total if total else 0.0,
        "macro_recall": sum(per_class[c]["recall"] for c in present) / len(present) if present else 0.0,
        "macro_f1": sum(per_class[c]["f1"] for c in present) / len(present) if present else 0.0,
        "per_class": per_class,
        "confusion": confusion,
        "labels": labels,
    }
