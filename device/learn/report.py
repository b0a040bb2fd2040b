"""What training leaves beside a model: its JSON report and a PNG of the learning curve.

The CLI writes them; ``cadence retrain`` moves them with the model it publishes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from device.components import atomic_write


def report_paths(model_path: Path) -> tuple[Path, Path]:
    """Where the JSON report and the PNG curve of a model go."""
    return (
        model_path.with_name(model_path.name + ".report.json"),
        model_path.with_name(model_path.name + ".curve.png"),
    )


def plot_curve(history: list[dict[str, Any]], path: Path, title: str = "", best_epoch: int | None = None) -> bool:
    """Accuracy and loss per epoch (training and validation) as a PNG; False if
    matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    epochs = [row["epoch"] for row in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, name in ((ax_acc, "accuracy", "accuracy"), (ax_loss, "loss", "loss")):
        ax.plot(epochs, [row.get(key) for row in history], marker="o", ms=3, label="training")
        if any(row.get(f"validation_{key}") is not None for row in history):
            ax.plot(epochs, [row.get(f"validation_{key}") for row in history], marker="o", ms=3, label="validation")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_acc.set_ylim(0, 1.02)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return True
