"""One gene's trained model as it is saved and loaded: :class:`GeneCheckpoint`.

Everything downstream of training (prediction, attribution, the storage loader) takes this one
type; the file (``torch.save`` of tensors and plain containers, so it loads with
``weights_only=True``) is ``{"state": <CHECKPOINT_FORMAT dict>, "history", "predictions",
"summary"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from regnet_assets.atomic import write_atomic
from regnet_assets.science.models.module import BatchedGeneModel, ModelSpec

CHECKPOINT_FORMAT = "regnet.gene_model/1"


@dataclass
class GeneCheckpoint:
    """A gene's architecture, input names, unpadded weights and training record."""

    gene: str
    spec: ModelSpec
    peak_names: list[str]
    tf_names: list[str]
    covariate_names: list[str] | None
    state_dict: dict[str, torch.Tensor]
    best_epoch: int | None = None  # 1-based
    train_config: dict | None = None  # TrainConfig.to_dict() of the run
    # the training record saved beside the weights: GeneResult's scalars, its history and predictions
    summary: dict[str, Any] = field(default_factory=dict)
    history: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None

    @property
    def n_peaks(self) -> int:
        return len(self.peak_names)

    @property
    def n_tfs(self) -> int:
        return len(self.tf_names)

    def module(self, device="cpu") -> BatchedGeneModel:
        """This gene's model (a one-gene :class:`BatchedGeneModel`) in eval mode, in the weights' dtype."""
        model = BatchedGeneModel(self.spec, [self.n_peaks], [self.n_tfs])
        model.to(dtype=next(iter(self.state_dict.values())).dtype)
        model.load_gene_state(0, self.state_dict)
        return model.to(device).eval()

    def check_names(self, peak_names, tf_names, gene: str) -> None:
        """Raise ValueError when inputs' peaks or TFs are not the ones the model was trained on."""
        for key, names in (("peak_names", peak_names), ("tf_names", tf_names)):
            if list(names) != list(getattr(self, key)):
                raise ValueError(f"{gene}: inputs.{key} differ from the checkpoint's")

    # ------------------------------------------------------------------ on disk
    def state(self) -> dict:
        """The ``CHECKPOINT_FORMAT`` dict stored under ``"state"``."""
        return {
            "format": CHECKPOINT_FORMAT,
            "gene": self.gene,
            "peak_names": list(self.peak_names),
            "tf_names": list(self.tf_names),
            "covariate_names": list(self.covariate_names) if self.covariate_names else None,
            "spec": self.spec.to_dict(),
            "n_peaks": self.n_peaks,
            "n_tfs": self.n_tfs,
            "state_dict": {k: v.cpu() for k, v in self.state_dict.items()},
            "best_epoch": self.best_epoch,
            "train_config": self.train_config,
        }

    def save(self, path) -> Path:
        """Write the checkpoint atomically (temp file + ``os.replace``), so a crash leaves no torn file."""
        path = Path(path)
        history = self.history if self.history is not None else pd.DataFrame()
        preds = self.predictions
        payload = {
            "state": self.state(),
            "history": {c: history[c].tolist() for c in history.columns},
            "predictions": {}
            if preds is None
            else {
                "metacell": [m if isinstance(m, int) else str(m) for m in preds["metacell"].tolist()],
                "split": preds["split"].astype(str).tolist(),
                "observed": preds["observed"].astype(float).tolist(),
                "predicted": preds["predicted"].astype(float).tolist(),
            },
            "summary": dict(self.summary),
        }
        write_atomic(path, lambda tmp: torch.save(payload, tmp))
        return path

    @classmethod
    def load(cls, path) -> GeneCheckpoint:
        """Read a checkpoint written by :meth:`save` (tensors on the CPU)."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        state = payload["state"]
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint (format={state.get('format')!r})")
        ck = cls(
            gene=state["gene"],
            spec=ModelSpec.from_dict(state["spec"]),
            peak_names=list(state["peak_names"]),
            tf_names=list(state["tf_names"]),
            covariate_names=state["covariate_names"],
            state_dict=state["state_dict"],
            best_epoch=state.get("best_epoch"),
            train_config=state.get("train_config"),
            summary=dict(payload["summary"]),
            history=pd.DataFrame(payload["history"]),
            predictions=pd.DataFrame(payload["predictions"]),
        )
        if (ck.n_peaks, ck.n_tfs) != (int(state["n_peaks"]), int(state["n_tfs"])):
            raise ValueError(f"{path}: n_peaks/n_tfs disagree with the peak and TF names")
        return ck

    def metadata(self) -> dict[str, Any]:
        """Summary, names, spec, the raw ``state`` and the history and predictions frames."""
        meta, state = dict(self.summary), self.state()
        meta.update(
            state=state,
            peak_names=state["peak_names"],
            tf_names=state["tf_names"],
            covariate_names=state["covariate_names"],
            spec=self.spec.to_dict(),
            history=self.history,
            predictions=self.predictions,
        )
        return meta


def load_gene_model_file(path, device="cpu") -> tuple[BatchedGeneModel, dict[str, Any]]:
    """(one gene's module in eval mode, its :meth:`GeneCheckpoint.metadata`) from a checkpoint file."""
    ck = GeneCheckpoint.load(path)
    return ck.module(device), ck.metadata()
