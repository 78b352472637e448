"""What one gene's model sees: :class:`GeneInputs`, built from a metacell MuData, and the padded
tensors (:class:`StackedInputs`) that a batched run of many genes computes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from regnet_assets.science.common.normalise import log_cp10k, row_totals
from regnet_assets.science.common.obs import obs_column
from regnet_assets.science.models.module import ModelSpec, distance_weight, sequence_onehot

_BASE_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _c in enumerate("ACGT"):
    _BASE_CODE[ord(_c)] = _BASE_CODE[ord(_c.lower())] = _i


@dataclass
class GeneInputs:
    """Everything one gene's model sees, for M metacells (shared by all genes of a run)."""

    gene: str
    peak_names: list[str]  # P peaks, sorted by distance
    peak_seq: np.ndarray | None  # (P, L) uint8: 0..3 = A,C,G,T, 4 = N
    peak_acc: np.ndarray  # (M, P) log1p(CP10k) accessibility
    peak_dist: np.ndarray  # (P,) bp to TSS
    tf_names: list[str]  # T candidate TFs
    tf_exp: np.ndarray  # (M, T) log1p(CP10k) TF expression
    covariates: np.ndarray  # (M, C)
    target: np.ndarray  # (M,) raw counts of the gene
    train: np.ndarray  # (M,) bool, True = train metacell
    metacells: list[str] | None = None  # metacell names (M,), for the predictions table
    covariate_names: list[str] | None = None
    # (M,) bool, True = test metacell: never trained on nor used for model selection (the rest,
    # neither train nor test, is the valid split that early stopping and the schedule follow)
    test: np.ndarray | None = None

    def split_labels(self) -> np.ndarray:
        """(M,) ``train`` / ``valid`` / ``test`` per metacell."""
        test = np.zeros(len(self.target), bool) if self.test is None else np.asarray(self.test, bool)
        return np.where(np.asarray(self.train, bool), "train", np.where(test, "test", "valid")).astype(object)

    @property
    def valid(self) -> np.ndarray:
        """(M,) bool, True = valid metacell."""
        return self.split_labels() == "valid"

    def validate(self) -> None:
        """Raise ValueError naming the field whose shape or content is inconsistent."""
        m, p, t = len(self.target), len(self.peak_names), len(self.tf_names)

        def check(name, arr, shape):
            if tuple(np.shape(arr)) != shape:
                raise ValueError(f"{self.gene}: {name} has shape {np.shape(arr)}, expected {shape}")

        check("peak_acc", self.peak_acc, (m, p))
        check("peak_dist", self.peak_dist, (p,))
        check("tf_exp", self.tf_exp, (m, t))
        check("train", self.train, (m,))
        if self.test is not None:
            check("test", self.test, (m,))
            if np.any(np.asarray(self.test, bool) & np.asarray(self.train, bool)):
                raise ValueError(f"{self.gene}: a metacell is in both train and test")
        if np.ndim(self.covariates) != 2 or len(self.covariates) != m:
            raise ValueError(f"{self.gene}: covariates must be (M={m}, C), got {np.shape(self.covariates)}")
        if self.peak_seq is not None:
            if np.ndim(self.peak_seq) != 2 or len(self.peak_seq) != p:
                raise ValueError(f"{self.gene}: peak_seq must be (P={p}, L), got {np.shape(self.peak_seq)}")
            if np.size(self.peak_seq) and int(np.max(self.peak_seq)) > 4:
                raise ValueError(f"{self.gene}: peak_seq codes must be in 0..4")
        if self.metacells is not None and len(self.metacells) != m:
            raise ValueError(f"{self.gene}: metacells has {len(self.metacells)} names, expected {m}")
        for name in ("peak_acc", "tf_exp", "covariates", "target", "peak_dist"):
            if not np.all(np.isfinite(np.asarray(getattr(self, name), dtype=float))):
                raise ValueError(f"{self.gene}: {name} has non-finite values")
        if np.any(np.asarray(self.target) < 0):
            raise ValueError(f"{self.gene}: target has negative counts")

    def check_fits(self, spec: ModelSpec) -> None:
        """Raise ValueError when these inputs cannot feed a model of architecture ``spec``."""
        if spec.use_sequence:
            if self.peak_seq is None:
                raise ValueError(f"{self.gene}: the model uses sequences but inputs.peak_seq is None")
            if np.shape(self.peak_seq)[1] != spec.seq_len:
                raise ValueError(
                    f"{self.gene}: sequence length {np.shape(self.peak_seq)[1]}, the model expects {spec.seq_len}"
                )
        if np.shape(self.covariates)[1] != spec.n_covariates:
            raise ValueError(
                f"{self.gene}: {np.shape(self.covariates)[1]} covariates, the model expects {spec.n_covariates}"
            )

    def metacell_names(self) -> list[str]:
        """The M metacell names as text (their positions when unnamed)."""
        if self.metacells is None:
            return [str(i) for i in range(len(self.target))]
        return [str(c) for c in self.metacells]


def encode_sequences(seqs) -> np.ndarray:
    """Equal-length A/C/G/T/N strings → (P, L) uint8 codes (anything else counts as N)."""
    seqs = [str(s) for s in seqs]
    lengths = {len(s) for s in seqs}
    if len(lengths) > 1:
        raise ValueError(f"atac.var['sequence'] must have one fixed length, found {sorted(lengths)[:5]}")
    if not seqs:
        return np.zeros((0, 0), np.uint8)
    raw = np.frombuffer("".join(seqs).encode("ascii", "replace"), dtype=np.uint8)
    return _BASE_CODE[raw].reshape(len(seqs), lengths.pop())


def _columns(x, idx) -> np.ndarray:
    sub = x[:, idx]
    return (sub.toarray() if sp.issparse(sub) else np.asarray(sub)).astype(np.float64)


def build_gene_inputs(
    metacells,
    peak_to_gene: pd.DataFrame,
    candidates: pd.DataFrame,
    genes: list[str],
    covariates=("total_counts_rna_log", "total_counts_atac_log"),
) -> tuple[list[GeneInputs], dict[str, str]]:
    """One :class:`GeneInputs` per buildable gene, plus ``{gene: reason}`` for skipped genes.

    ``metacells``: MuData with summed raw counts in ``mod['rna'].X`` / ``mod['atac'].X``, an
    ``obs['split']`` of train/valid/test and the covariate columns (global or per-modality obs),
    optionally ``mod['atac'].var['sequence']``. ``peak_to_gene``: columns gene, peak, distance;
    ``candidates``: columns gene, tf.

    Accessibility and TF expression are log1p(counts per 10k of the metacell's total), whereas
    the reference feeds raw counts: raw counts differ by orders of magnitude between peaks and
    between metacells, so the largest features dominate the optimisation and the fitted model
    depends on sequencing depth; depth itself is still available through the covariates. A gene
    with fewer than 3 linked peaks or no candidate TF (other than itself) is skipped.
    """
    rna, atac = metacells.mod["rna"], metacells.mod["atac"]
    index = pd.Index(rna.obs_names)
    if not index.is_unique:
        raise ValueError("rna.obs_names must be unique")
    missing_cells = index.difference(pd.Index(atac.obs_names))
    if len(missing_cells):
        raise ValueError(
            f"{len(missing_cells)} metacells of rna are missing from atac, e.g. {missing_cells[0]!r}"
        )
    atac_rows = pd.Index(atac.obs_names).get_indexer(index)
    split = obs_column(metacells, "split", index)
    if split is None or split.isna().any():
        raise ValueError(
            "obs['split'] is missing (expected values 'train'/'valid'/'test' for every metacell)"
        )
    bad = set(split.astype(str)) - {"train", "valid", "test"}
    if bad:
        raise ValueError(f"obs['split'] has values other than train/valid/test: {sorted(bad)[:5]}")
    train = (split.astype(str) == "train").to_numpy()
    test = (split.astype(str) == "test").to_numpy()
    cov_cols = []
    for name in covariates:
        col = obs_column(metacells, name, index)
        if col is None or col.isna().any():
            raise ValueError(f"covariate obs['{name}'] is missing (expected a number for every metacell)")
        cov_cols.append(pd.to_numeric(col).to_numpy(np.float32))
    cov = np.stack(cov_cols, axis=1) if cov_cols else np.zeros((len(index), 0), np.float32)
    for frame, cols, label in (
        (peak_to_gene, ("gene", "peak", "distance"), "peak_to_gene"),
        (candidates, ("gene", "tf"), "candidates"),
    ):
        lacking = [c for c in cols if c not in frame.columns]
        if lacking:
            raise ValueError(f"{label} lacks columns {lacking}")

    rna_x = rna.X
    atac_x = atac.X[atac_rows] if not np.array_equal(atac_rows, np.arange(len(index))) else atac.X
    rna_tot, atac_tot = row_totals(rna_x), row_totals(atac_x)
    # per-gene column slices: CSC makes them cheap
    rna_x = rna_x.tocsc() if sp.issparse(rna_x) else rna_x
    atac_x = atac_x.tocsc() if sp.issparse(atac_x) else atac_x
    rna_var, atac_var = pd.Index(rna.var_names), pd.Index(atac.var_names)
    sequences = None
    if "sequence" in atac.var.columns:
        sequences = encode_sequences(atac.var["sequence"].astype(str).to_list())

    links = peak_to_gene[peak_to_gene["gene"].isin(genes)]
    links = links.assign(distance=links["distance"].abs()).sort_values(
        ["gene", "distance", "peak"], kind="stable"
    )
    links = links.drop_duplicates(["gene", "peak"], keep="first")  # keep the minimum distance
    unknown = set(links["peak"]) - set(atac_var)
    if unknown:
        raise ValueError(
            f"peak_to_gene names {len(unknown)} peaks absent from atac.var_names, e.g. {sorted(unknown)[0]!r}"
        )
    by_gene_links = dict(tuple(links.groupby("gene", sort=False)))
    cands = candidates[candidates["gene"].isin(genes)]
    by_gene_tfs = {
        g: list(dict.fromkeys(df["tf"].astype(str))) for g, df in cands.groupby("gene", sort=False)
    }
    metacell_names = [str(x) for x in index]

    built, skipped = [], {}
    for gene in dict.fromkeys(genes):
        if gene not in rna_var:
            skipped[gene] = "gene not in rna.var_names"
            continue
        gl = by_gene_links.get(gene)
        n_peaks = 0 if gl is None else len(gl)
        if n_peaks < 3:
            skipped[gene] = f"{n_peaks} linked peaks (< 3)"
            continue
        tfs = [t for t in by_gene_tfs.get(gene, []) if t != gene and t in rna_var]
        if not tfs:
            skipped[gene] = "no candidate TFs"
            continue
        peak_idx = atac_var.get_indexer(gl["peak"])
        built.append(
            GeneInputs(
                gene=gene,
                peak_names=gl["peak"].astype(str).to_list(),
                peak_seq=None if sequences is None else sequences[peak_idx],
                peak_acc=log_cp10k(_columns(atac_x, peak_idx), atac_tot, np.float32),
                peak_dist=gl["distance"].to_numpy(np.float32),
                tf_names=tfs,
                tf_exp=log_cp10k(_columns(rna_x, rna_var.get_indexer(tfs)), rna_tot, np.float32),
                covariates=cov,
                target=_columns(rna_x, [rna_var.get_loc(gene)])[:, 0].astype(np.float32),
                train=train.copy(),
                metacells=metacell_names,
                covariate_names=list(covariates),
                test=test.copy(),
            )
        )
    return built, skipped


class StackedInputs:
    """Padded per-gene input tensors for one batched run."""

    def __init__(self, inputs: list[GeneInputs], spec: ModelSpec, device, dtype=torch.float32):
        g, m = len(inputs), len(inputs[0].target)
        pmax = max(len(x.peak_names) for x in inputs)
        tmax = max(len(x.tf_names) for x in inputs)
        acc = np.zeros((g, m, pmax), np.float32)
        tf = np.zeros((g, m, tmax), np.float32)
        dist = np.zeros((g, pmax), np.float32)
        for i, x in enumerate(inputs):
            p, t = len(x.peak_names), len(x.tf_names)
            acc[i, :, :p] = x.peak_acc
            tf[i, :, :t] = x.tf_exp
            dist[i, :p] = distance_weight(np.asarray(x.peak_dist, np.float64)).numpy()
        self.acc = torch.as_tensor(acc, device=device, dtype=dtype)
        self.tf = torch.as_tensor(tf, device=device, dtype=dtype)
        self.dist = torch.as_tensor(dist, device=device, dtype=dtype)
        cov = np.stack([np.asarray(x.covariates, np.float32) for x in inputs])
        self.cov = torch.as_tensor(cov, device=device, dtype=dtype)
        y = np.stack([np.asarray(x.target, np.float32) for x in inputs])
        self.y = torch.as_tensor(y, device=device, dtype=dtype)
        self.seq = None
        if spec.use_sequence:
            codes = np.full((g, pmax, spec.seq_len), 4, np.uint8)  # padded peaks: all N = zeros
            for i, x in enumerate(inputs):
                codes[i, : len(x.peak_names)] = x.peak_seq
            self.seq = sequence_onehot(codes, device=device).to(dtype)
