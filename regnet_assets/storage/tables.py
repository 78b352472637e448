"""Every Parquet table regnet writes: its group, what it holds and its columns (Arrow type, meaning).

The one source of the tables' documentation: the assets' column schemas in the UI
(``defs/metadata.py::column_schema``), the README of ``regnet export`` and the table list of
the project README (``python -m regnet_assets.storage.tables`` prints it) are made from it.
Column order and types are those of the files; a test materializes the graph on the small
simulated dataset and compares every file's schema with this registry.

Types are Arrow type names as ``pyarrow`` prints them (``string``, ``int64``, ``double``,
``float`` = float32, ``bool``). On a user's dataset a few tables differ: ``metacells`` names
its label column after ``groupby`` and has ``batch``/``condition`` only when the data does,
``model_performance`` has its ``oracle_*`` columns on simulated data only, and the ``truth_*``
tables are empty.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pyarrow as pa

GROUPS = ("dataset", "models", "attribution", "network", "reports")


@dataclass(frozen=True)
class Column:
    """One column: its name, its Arrow type and what it means."""

    name: str
    type: str
    meaning: str


@dataclass(frozen=True)
class Table:
    """One table: its asset group, whether it has one file per gene, what it holds, its columns."""

    name: str
    group: str
    description: str
    columns: tuple[Column, ...]
    per_gene: bool = False


def _table(
    name: str, group: str, description: str, columns: list[tuple[str, str, str]], per_gene: bool = False
) -> Table:
    return Table(name, group, description, tuple(Column(*c) for c in columns), per_gene)


_TABLES = [
    # dataset
    _table(
        "peak_gene_links",
        "dataset",
        "Peak → gene links with the distance to the TSS (given, or derived within ±500 kb).",
        [
            ("gene", "string", "gene"),
            (
                "peak",
                "string",
                "linked peak, named as in the dataset (chrom:start-end, chrom-start-end or chrom_start_end)",
            ),
            (
                "distance",
                "double",
                "distance from the peak to the gene's TSS in bp, signed as the user's table gives it (negative = upstream; derived links are unsigned); models use its absolute value",
            ),
        ],
    ),
    _table(
        "motif_hits",
        "dataset",
        "TF motif hits per peak (long form): given in the file, or scanned with JASPAR2024 PWMs.",
        [
            (
                "peak",
                "string",
                "peak, named as in the dataset (chrom:start-end, chrom-start-end or chrom_start_end)",
            ),
            ("tf", "string", "TF whose motif hits the peak"),
        ],
    ),
    _table(
        "metacells",
        "dataset",
        "One row per metacell: label, batch, condition, covariates and train/valid/test split.",
        [
            ("metacell", "string", "metacell name"),
            ("seed_cell", "string", "cell whose kNN group the metacell sums"),
            ("n_cells", "int64", "cells summed"),
            ("cell_type", "string", "majority cell type of its cells (the groupby column)"),
            ("batch", "string", "majority batch of its cells (when the dataset has one)"),
            ("condition", "string", "majority condition of its cells (when the dataset has one)"),
            ("total_counts_rna", "double", "summed RNA counts"),
            ("total_counts_rna_log", "double", "log10 of total_counts_rna (a model covariate)"),
            ("total_counts_atac", "double", "summed ATAC counts"),
            ("total_counts_atac_log", "double", "log10 of total_counts_atac (a model covariate)"),
            (
                "split",
                "string",
                "train, valid or test: the split of its cells (each split's metacells are built from its own cells)",
            ),
        ],
    ),
    _table(
        "gene_tf_candidates",
        "dataset",
        "Candidate regulators: expressed TFs whose motif hits a peak linked to the gene.",
        [
            ("gene", "string", "target gene"),
            ("tf", "string", "candidate TF: expressed, with a motif hit in a peak linked to the gene"),
            ("n_peaks_hit", "int64", "distinct linked peaks of the gene that the TF's motif hits"),
        ],
    ),
    _table(
        "genes",
        "dataset",
        "Every linked gene with its peak and candidate-TF counts; `modelable` genes become partitions.",
        [
            ("gene", "string", "gene linked to at least one peak"),
            ("n_peaks", "int64", "distinct linked peaks"),
            ("n_candidate_tfs", "int64", "candidate TFs (gene_tf_candidates)"),
            ("modelable", "bool", "enough peaks and candidate TFs to model: the gene becomes a partition"),
        ],
    ),
    _table(
        "truth_tf_gene",
        "dataset",
        "The simulator's signed TF → gene edges (empty for a user's dataset).",
        [
            ("tf", "string", "regulator"),
            ("gene", "string", "target"),
            ("sign", "int64", "+1 activates, −1 represses"),
            ("weight", "double", "effect size in the simulator"),
            ("cell_types", "string", "';'-joined cell types where the edge acts, or all"),
        ],
    ),
    _table(
        "truth_signalling",
        "dataset",
        "The simulator's receptor → kinase → TF hierarchy (empty for a user's dataset).",
        [
            ("source", "string", "upstream node (receptor or kinase)"),
            ("target", "string", "downstream node (kinase or TF)"),
            ("sign", "int64", "+1 activation, −1 inhibition"),
            ("level", "string", "receptor->kinase, kinase->kinase or kinase->tf"),
        ],
    ),
    # models
    _table(
        "gene_models",
        "models",
        "One row per gene: trained or skipped (why), sizes, best epoch, losses, device, seconds.",
        [
            ("gene", "string", "target gene"),
            ("status", "string", "trained | skipped"),
            ("reason", "string", "why a gene was skipped"),
            ("n_peaks", "int64", "linked peaks"),
            ("n_tfs", "int64", "candidate TFs"),
            ("n_params", "int64", "trainable parameters"),
            ("best_epoch", "int64", "epoch (1-based) whose weights are kept (lowest valid loss by default)"),
            ("epochs_run", "int64", "epochs trained"),
            ("train_loss", "double", "Poisson NLL over train metacells at the best epoch"),
            ("valid_loss", "double", "Poisson NLL over valid metacells at the best epoch"),
            ("device", "string", "torch device"),
            ("seconds", "double", "wall-clock training time of the gene's chunk, shared among its genes"),
        ],
        per_gene=True,
    ),
    _table(
        "training_history",
        "models",
        "Per gene and epoch: losses, valid/train Spearman and learning rate.",
        [
            ("epoch", "int64", "epoch (1-based)"),
            ("train_loss", "double", "Poisson NLL, train metacells (eval mode)"),
            ("valid_loss", "double", "Poisson NLL, valid metacells"),
            ("valid_spearman", "double", "Spearman of observed vs predicted, valid"),
            ("train_spearman", "double", "the same on train metacells"),
            ("lr", "double", "learning rate in that epoch"),
            ("train_batch_loss", "double", "mean minibatch loss during the epoch (train mode)"),
            ("gene", "string", "target gene"),
        ],
        per_gene=True,
    ),
    _table(
        "predictions",
        "models",
        "Per gene and metacell: split, observed count and predicted count (best epoch's weights).",
        [
            ("metacell", "string", "metacell"),
            ("split", "string", "train, valid (early stopping) or test (held out, the reported figures)"),
            ("observed", "double", "observed count"),
            ("predicted", "double", "predicted count (exp of the log-rate)"),
            ("gene", "string", "target gene"),
        ],
        per_gene=True,
    ),
    _table(
        "gene_correlation",
        "models",
        "Per gene: train/valid/test Spearman and Pearson, the oracle ceiling on simulated data and the cell-type × depth null.",
        [
            ("gene", "string", "target gene"),
            ("status", "string", "trained | skipped"),
            ("train_spearman", "double", "scipy Spearman, train"),
            ("train_pearson", "double", "Pearson, train"),
            ("n_train", "int64", "train metacells"),
            ("valid_spearman", "double", "scipy Spearman, valid"),
            ("valid_pearson", "double", "Pearson, valid"),
            ("n_valid", "int64", "valid metacells"),
            ("test_spearman", "double", "scipy Spearman, test (cells held out before the metacells)"),
            ("test_pearson", "double", "Pearson, test"),
            ("n_test", "int64", "test metacells"),
            (
                "oracle_spearman",
                "double",
                "Spearman of observed test counts with the simulator's true rates (NaN on real data)",
            ),
            (
                "null_spearman",
                "double",
                "test Spearman of a Poisson GLM on cell type and log depth alone (fitted on train)",
            ),
        ],
        per_gene=True,
    ),
    _table(
        "model_performance",
        "models",
        "Summary over all genes on the test split: Spearman quantiles beside the oracle ceiling and the cell-type × depth null, the seed's counts and where the best epochs fell; plots: train vs test, best epochs across genes, one gene's training curve, observed vs predicted test counts of nine genes from the best to the worst.",
        [
            ("n_genes", "int64", "trained genes with a finite test Spearman"),
            ("test_spearman_median", "double", "median test Spearman"),
            ("test_spearman_q25", "double", "its 25 % quantile"),
            ("test_spearman_q75", "double", "its 75 % quantile"),
            ("test_spearman_mean", "double", "mean test Spearman"),
            ("valid_spearman_median", "double", "median valid Spearman (the split early stopping saw)"),
            ("n_test_above_0_7", "int64", "genes with test Spearman > 0.7"),
            ("n_test_below_0_3", "int64", "genes with test Spearman < 0.3"),
            (
                "n_train_much_above_test",
                "int64",
                "genes whose train Spearman exceeds test by more than 0.2 (overfitting)",
            ),
            ("null_spearman_median", "double", "median test Spearman of the cell-type × depth null"),
            ("oracle_spearman_median", "double", "simulated data only: median oracle Spearman (test)"),
            ("fraction_of_oracle_median", "double", "simulated data only: median of test / oracle Spearman"),
            ("best_epoch_median", "double", "median best epoch"),
            ("n_best_at_last_epoch", "int64", "genes whose best epoch was their last (still improving)"),
        ],
    ),
    # attribution
    _table(
        "tf_attribution",
        "attribution",
        "Integrated Gradients of each gene's predicted log-rate w.r.t. each candidate TF, per metacell.",
        [
            ("gene", "string", "target gene"),
            ("metacell", "string", "metacell name"),
            ("tf", "string", "candidate TF of the gene"),
            (
                "attribution",
                "double",
                "Integrated Gradients of the gene's predicted log-rate w.r.t. the TF's expression (baseline: TF expression 0)",
            ),
        ],
        per_gene=True,
    ),
    _table(
        "tf_to_gene",
        "attribution",
        "Attributions summarised per gene, cell type and TF (mean, SD), ranked.",
        [
            ("gene", "string", "target gene"),
            ("cell_type", "string", "cell type of the metacells ('all' = every metacell)"),
            ("tf", "string", "candidate TF"),
            ("mean_attr", "double", "mean attribution over the cell type's metacells (signed)"),
            ("std_attr", "double", "standard deviation (ddof 0) of the attribution"),
            ("n_metacells", "int64", "metacells of the cell type"),
            ("rank", "int64", "1 = largest |mean_attr| (or signed, see config)"),
        ],
        per_gene=True,
    ),
    _table(
        "attribution_delta",
        "attribution",
        "Completeness (convergence delta) of each gene's attributions.",
        [
            ("gene", "string", "target gene"),
            ("status", "string", "attributed | skipped"),
            ("reason", "string", "why a gene was skipped"),
            ("n_metacells", "int64", "metacells attributed"),
            ("n_tfs", "int64", "candidate TFs of the gene"),
            ("n_steps", "int64", "quadrature points (0 = closed-form integral)"),
            ("max_abs_delta", "double", "max over metacells of |Σ attributions − (f(x) − f(baseline))|"),
            ("mean_abs_delta", "double", "mean over metacells of the same"),
            (
                "output_range",
                "double",
                "max over metacells of |f(x) − f(baseline)|, the effect the attributions explain",
            ),
            (
                "relative_delta",
                "double",
                "max_abs_delta / output_range (the completeness check compares it to its threshold)",
            ),
            ("device", "string", "torch device"),
        ],
        per_gene=True,
    ),
    _table(
        "regulatory_network",
        "attribution",
        "TF → gene edges of all genes: score, sign, cell types where the TF is in the top n, targets per TF; plots: heatmap of the top edges, top TFs per cell type.",
        [
            ("tf", "string", "regulator"),
            ("gene", "string", "target"),
            ("score", "double", "mean |attribution| over all metacells"),
            ("sign", "int64", "+1 activates, −1 represses (sign of the mean attribution)"),
            ("mean_attr", "double", "mean attribution over all metacells"),
            ("cell_types", "string", "';'-joined cell types where the TF is in the gene's top n"),
            ("top_overall", "bool", "in the gene's top n over all metacells"),
            ("in_network", "bool", "in any top n (the network proper; other rows are scored candidates)"),
            ("n_targets_of_tf", "int64", "network genes the TF regulates"),
        ],
    ),
    _table(
        "grn_recovery",
        "attribution",
        "AUROC/AUPRC/EPR/sign accuracy of the network vs the true edges, beside every baseline.",
        [
            (
                "method",
                "string",
                "regnet (attribution); baselines fitted on the train metacells' log1p CP10k expression: "
                "correlation (|Pearson r|), spearman (|Spearman rho|), ridge (|RidgeCV coefficient| on "
                "standardised candidate TFs), elastic_net (|ElasticNetCV coefficient|), grnboost2 "
                "(arboreto importance, signed by r); motif_count (linked peaks with the TF's motif, unsigned); "
                "random_expected (analytic), random_seeded (one draw)",
            ),
            ("cell_type", "string", "'all' or the cell type whose metacells and true edges are scored"),
            (
                "n_candidates",
                "int64",
                "candidate (TF, gene) pairs scored (gene_tf_candidates of the modelled genes)",
            ),
            ("n_true", "int64", "true edges among the candidates"),
            ("auroc", "double", "area under the ROC curve of true TF → gene edges among the candidates"),
            ("auprc", "double", "average precision (area under the precision–recall curve)"),
            (
                "epr",
                "double",
                "BEELINE early precision ratio: precision of the top-k edges by |score| (k = n_true; ties at "
                "the k-th score all kept, zero/unscored never) over the prevalence; 1 = random",
            ),
            ("prevalence", "double", "share of candidates that are true edges (AUPRC of a random ranking)"),
            (
                "sign_accuracy",
                "double",
                "share of true edges whose predicted sign matches (NaN: unsigned method)",
            ),
            (
                "n_signed",
                "int64",
                "true edges with a non-zero predicted sign (the sign_accuracy denominator)",
            ),
            (
                "n_true_outside",
                "double",
                "true edges outside the candidates (cannot be recovered); NaN per cell type",
            ),
            ("note", "string", "why a method has no figures (e.g. arboreto not installed), else empty"),
        ],
    ),
    # network
    _table(
        "pkn_edges",
        "network",
        "The prior-knowledge network: input genes → TFs → signalling → root, validated, a DAG.",
        [
            (
                "source",
                "string",
                "node the signal comes from (computation direction: gene → TF → signalling → root)",
            ),
            ("target", "string", "node it feeds"),
            ("sign", "int8", "+1 activation, −1 inhibition (biological sign; carried for interpretation)"),
            (
                "origin",
                "string",
                "where the edge comes from: truth_signalling, decoy_control, signalling_pkn, gene_tf_candidates, regulatory_network, file or human_kpnn",
            ),
        ],
    ),
    _table(
        "pruned_dag_edges",
        "network",
        "The smallest DAG of the PKN in which every input reaches the root.",
        [
            (
                "source",
                "string",
                "node the signal comes from (computation direction: gene → TF → signalling → root)",
            ),
            ("target", "string", "node it feeds"),
            ("sign", "int8", "+1 activation, −1 inhibition (biological sign; carried for interpretation)"),
            (
                "origin",
                "string",
                "where the edge comes from: truth_signalling, decoy_control, signalling_pkn, gene_tf_candidates, regulatory_network, file or human_kpnn",
            ),
        ],
    ),
    _table(
        "pruning_summary",
        "network",
        "One row: sizes before/after, compression and solver numbers.",
        [
            ("root", "string", "output node"),
            ("method", "string", "structural or acyclic_flow"),
            ("status", "string", "solver status: optimal, or what stopped it"),
            ("nodes_input", "int64", "nodes of the validated PKN"),
            ("edges_input", "int64", "its edges"),
            ("inputs_given", "int64", "input genes given"),
            ("inputs_dropped", "int64", "inputs absent from the network or unable to reach the root"),
            ("nodes_before", "int64", "nodes of the full network"),
            ("edges_before", "int64", "its edges"),
            ("nodes_after", "int64", "nodes of the minimal DAG"),
            ("edges_after", "int64", "its edges"),
            ("neurons_before", "int64", "hidden neurons of the full network"),
            ("neurons_after", "int64", "hidden neurons of the minimal DAG"),
            ("edge_compression_pct", "double", "100 × (1 − edges_after / edges_before)"),
            (
                "edge_compression_with_artificial_pct",
                "double",
                "edge compression counting CORNETO's artificial input/output edges on both sides",
            ),
            ("params_before", "int64", "KPNN parameters of the full network"),
            ("params_after", "int64", "KPNN parameters of the minimal DAG"),
            ("parameter_compression_pct", "double", "100 × (1 − KPNN params after / before)"),
            ("objective", "int64", "kept edges"),
            ("best_bound", "double", "proven lower bound on kept edges"),
            ("bound_available", "bool", "HiGHS reported a bound"),
            ("mip_gap", "double", "(objective − best_bound) / objective"),
            ("neuron_gap", "double", "(objective − best_bound) / kept neurons"),
            ("solver_objective", "double", "HiGHS objective of its own model"),
            ("solver_bound", "double", "HiGHS bound of its own model"),
            ("solver_mip_gap", "double", "HiGHS MIP gap"),
            ("mip_nodes", "int64", "branch-and-bound nodes"),
            ("prepare_seconds", "double", "validation and reachability pruning time"),
            ("build_seconds", "double", "model build + compile time"),
            ("solve_seconds", "double", "HiGHS time"),
            ("time_limit", "double", "HiGHS time limit (s)"),
            ("input_acyclic", "bool", "the input network was already acyclic"),
            ("result_acyclic", "bool", "the result is acyclic"),
            ("model_info", "string", "JSON: the MILP's size and rounds"),
        ],
    ),
    _table(
        "kpnn_metrics",
        "network",
        "Held-out metrics per CV fold, full and pruned network.",
        [
            ("network", "string", "full or pruned"),
            ("fold", "int64", "CV fold"),
            ("accuracy", "double", "held-out, threshold 0.5"),
            ("precision", "double", "held-out"),
            ("recall", "double", "held-out"),
            ("f1", "double", "held-out"),
            ("roc_auc", "double", "held-out ROC-AUC"),
            ("n_params", "int64", "Σ over neurons of (in-degree + 1)"),
            ("best_epoch", "int64", "early-stopping epoch"),
            ("epochs_run", "int64", "epochs trained before early stopping"),
            ("n_train", "int64", "training cells of the fold"),
            ("n_valid", "int64", "inner validation cells (early stopping)"),
            ("n_test", "int64", "held-out cells scored"),
        ],
    ),
    _table(
        "kpnn_summary",
        "network",
        "Per network: mean metrics, parameters, compression and ROC-AUC change vs full.",
        [
            ("network", "string", "full or pruned"),
            ("n_params", "int64", "KPNN parameters"),
            ("accuracy", "double", "mean held-out accuracy"),
            ("precision", "double", "mean held-out precision"),
            ("recall", "double", "mean held-out recall"),
            ("f1", "double", "mean held-out F1"),
            ("roc_auc", "double", "mean held-out ROC-AUC"),
            ("roc_auc_sd", "double", "SD (ddof 0) of ROC-AUC over folds"),
            ("mean_best_epoch", "double", "mean early-stopping epoch over folds"),
            (
                "pathway_vs_decoy_auc",
                "double",
                "simulator only: AUROC of the control-corrected KPNN importance (node_weight_corrected), the pathway's TF-level kinases vs the decoy kinases at the same depth (NaN if either is absent or there are no control networks)",
            ),
            (
                "pathway_vs_decoy_auc_uncorrected",
                "double",
                "the same AUROC of the uncorrected KPNN node weight (node_weight_scaled, |mean ∂ŷ/∂a|)",
            ),
            ("control_networks", "int64", "control-input networks trained (KPNN --control; 0 = uncorrected)"),
            ("control_roc_auc", "double", "mean held-out ROC-AUC of the control networks"),
            ("control_seconds", "double", "wall-clock time of the control networks"),
            ("n_edges", "int64", "edges of the network"),
            ("n_inputs", "int64", "input genes"),
            ("n_hidden", "int64", "hidden neurons"),
            ("n_cells", "int64", "cells used"),
            ("seconds", "double", "wall-clock cross-validation time"),
            ("device", "string", "torch device"),
            ("positive_class", "string", "class coded 1"),
            ("parameter_compression_pct", "double", "100 × (1 − params / full params)"),
            ("roc_auc_change_pct", "double", "100 × (ROC-AUC − full ROC-AUC) / full ROC-AUC"),
        ],
    ),
    _table(
        "kpnn_node_importance",
        "network",
        "Per node, network and fold: learned bias and KPNN node weight, control-corrected; fold −1 = mean.",
        [
            ("network", "string", "full or pruned"),
            ("fold", "int64", "CV fold; −1 = mean over folds; the control network's number on control rows"),
            ("scope", "string", "fold, mean, or control (a network trained on control inputs)"),
            ("node", "string", "neuron"),
            ("role", "string", "simulator role (pathway_kinase, decoy_kinase, ...); root for the output"),
            ("is_output", "bool", "the output (root) neuron"),
            ("bias", "float", "learned bias"),
            ("node_weight", "float", "mean ∂ŷ/∂activation over test cells (KPNN node weight)"),
            ("node_weight_abs", "float", "mean |∂ŷ/∂activation|"),
            ("node_weight_abs_sd", "float", "SD (ddof 0) over folds of node_weight_abs (mean rows only)"),
            ("node_weight_kpnn", "float", "|mean ∂ŷ/∂activation| (the KPNN paper's node weight)"),
            (
                "node_weight_scaled",
                "float",
                "node_weight_kpnn min–max scaled over all folds and nodes (controls: over the control networks)",
            ),
            ("control_weight_scaled", "float", "mean node_weight_scaled of the control networks"),
            ("node_weight_corrected", "float", "node_weight_scaled − control_weight_scaled: the importance"),
            (
                "node_weight_control_z",
                "float",
                "Welch statistic of folds vs control networks (mean rows only)",
            ),
            (
                "rank",
                "double",
                "1 = largest node_weight_corrected in its fold (scaled weight without controls)",
            ),
        ],
    ),
    _table(
        "kpnn_history",
        "network",
        "Training curves per network, fold and epoch.",
        [
            ("network", "string", "full or pruned"),
            ("fold", "int64", "CV fold"),
            ("epoch", "int64", "epoch"),
            ("train_loss", "double", "BCE"),
            ("valid_loss", "double", "BCE, inner validation split"),
            ("valid_auc", "double", "ROC-AUC, inner validation split"),
        ],
    ),
    _table(
        "kpnn_activations",
        "network",
        "Hidden-node activations of held-out cells (long form), for embeddings.",
        [
            ("network", "string", "full or pruned"),
            ("cell", "string", "cell"),
            ("fold", "int64", "fold in which the cell was held out"),
            ("node", "string", "hidden neuron"),
            ("activation", "float", "sigmoid output"),
        ],
    ),
    _table(
        "kpnn_predictions",
        "network",
        "Held-out predicted probability per cell and network.",
        [
            ("network", "string", "full or pruned"),
            ("cell", "string", "cell"),
            ("fold", "int64", "fold in which the cell was held out"),
            ("y_true", "int64", "1 = positive class"),
            ("y_prob", "float", "predicted probability"),
        ],
    ),
    # reports
    _table(
        "ablated_gene_correlation",
        "reports",
        "Train/valid/test scores of each gene's model trained without its TF branch.",
        [
            ("gene", "string", "target gene"),
            ("status", "string", "trained | skipped"),
            ("reason", "string", "why a gene was skipped"),
            ("n_tfs_zeroed", "int64", "candidate TFs whose expression was set to 0"),
            ("train_spearman", "double", "Spearman of observed vs predicted counts, train metacells"),
            ("train_pearson", "double", "Pearson, train metacells"),
            ("n_train", "int64", "train metacells"),
            ("valid_spearman", "double", "Spearman, valid metacells (the split early stopping saw)"),
            ("valid_pearson", "double", "Pearson, valid metacells"),
            ("n_valid", "int64", "valid metacells"),
            ("test_spearman", "double", "Spearman, test metacells (the score gene_ranks uses)"),
            ("test_pearson", "double", "Pearson, test metacells"),
            ("n_test", "int64", "test metacells"),
            ("best_epoch", "int64", "epoch of the checkpoint kept (by the configured checkpoint_metric)"),
            ("epochs_run", "int64", "epochs trained"),
            ("epochs", "int64", "configured epochs"),
            ("lr", "double", "configured learning rate"),
            (
                "config_source",
                "string",
                "full_model_run (the training config of the run that made the gene's full model) or ablation_config (this asset's own config)",
            ),
        ],
        per_gene=True,
    ),
    _table(
        "gene_ranks",
        "reports",
        "Per gene: test Spearman with and without the TF branch, their ranks and rank difference.",
        [
            ("gene", "string", "target gene"),
            ("metric", "string", "score ranked (test_spearman)"),
            ("score_full", "double", "test score of the full model"),
            ("score_ablated", "double", "test score without the TF branch"),
            ("rank_full", "double", "ascending average rank (n = best) among genes with both scores finite"),
            ("rank_ablated", "double", "the same for the ablated model"),
            (
                "rank_diff",
                "double",
                "rank_full - rank_ablated: positive = relatively better with TFs (needs TFs)",
            ),
            ("avg_rank", "double", "(rank_full + rank_ablated) / 2: overall predictability"),
            ("score_delta", "double", "score_full - score_ablated"),
        ],
    ),
    _table(
        "embeddings",
        "reports",
        "Per fold and split, the metacell/cell embedding of each representation that exists (long form).",
        [
            ("representation", "string", "observed_pca, predicted_pca, tf_activity, kpnn_full, kpnn_pruned"),
            ("level", "string", "metacell or cell"),
            ("fold", "int64", "fold (metacell K-fold, or the KPNN's CV fold)"),
            ("split", "string", "train (the PCA was fitted on it) or test (held out)"),
            ("obs_name", "string", "metacell or cell"),
            ("cell_type", "string", "biological label"),
            ("batch", "string", "technical label"),
            ("dim", "string", "PC, TF or KPNN node"),
            ("dim_index", "int64", "position of the dim"),
            ("value", "double", "coordinate"),
        ],
    ),
    _table(
        "clustering_scores",
        "reports",
        "ASW, Davies-Bouldin, Calinski-Harabasz (and scIB ASWs) per representation, fold, split and label.",
        [
            ("representation", "string", "embedding"),
            ("level", "string", "metacell or cell"),
            ("fold", "int64", "fold"),
            ("split", "string", "split scored"),
            ("label", "string", "obs column scored"),
            ("label_role", "string", "bio or batch"),
            ("n_cells", "int64", "observations scored"),
            ("n_classes", "int64", "classes of the label"),
            ("silhouette", "double", "raw sklearn ASW (euclidean), in [-1, 1]"),
            ("davies_bouldin", "double", "Davies-Bouldin (lower = better separated)"),
            ("inv_davies_bouldin", "double", "1 / DB"),
            ("calinski_harabasz", "double", "Calinski-Harabasz"),
            ("asw_label_scib", "double", "scIB label ASW, (ASW + 1) / 2"),
            ("asw_batch_scib", "double", "scIB batch ASW: mean over cell types of mean 1 - |s| (1 = mixed)"),
            ("note", "string", "why a score is NaN"),
        ],
    ),
    _table(
        "clustering_score_summary",
        "reports",
        "Mean, SD, SEM and t CI (n_folds - 1 df) over folds; lowest/highest batch-ASW folds; bar plot.",
        [
            ("representation", "string", "embedding"),
            ("split", "string", "split scored"),
            ("label", "string", "obs column"),
            ("metric", "string", "score"),
            ("mean", "double", "mean over folds"),
            ("std", "double", "SD over folds (ddof 1)"),
            ("sem", "double", "std / sqrt(n_folds)"),
            ("ci_lower", "double", "95% CI, t with n_folds - 1 df"),
            ("ci_upper", "double", "95% CI upper"),
            ("ci_df", "int64", "t degrees of freedom"),
            ("n_folds", "int64", "folds with a finite value"),
            ("fold_min_batch_silhouette", "int64", "fold with the lowest raw batch ASW"),
            ("fold_max_batch_silhouette", "int64", "fold with the highest raw batch ASW"),
        ],
    ),
    _table(
        "gene_loadings",
        "reports",
        "Standardised loading of every gene on every dim of each latent space.",
        [
            ("latent", "string", "latent space"),
            ("gene", "string", "measured gene"),
            ("dim", "string", "latent dimension"),
            (
                "loading",
                "double",
                "standardised loading: change in the gene's SD per +1 SD of the dim (fitted linear decoder)",
            ),
        ],
    ),
    _table(
        "latent_rank_report",
        "reports",
        "Numerical rank of each latent space (are its dims linearly independent?).",
        [
            ("latent", "string", "latent space"),
            ("n_obs", "int64", "finite observations"),
            ("n_dims", "int64", "dims"),
            ("rank", "int64", "numerical rank"),
            ("linearly_independent", "bool", "rank == n_dims"),
            ("dims", "string", "';'-joined dim names"),
        ],
    ),
    _table(
        "dim_importance",
        "reports",
        "Share of standardised explained variance per dim, with the cumulative cutoff.",
        [
            ("latent", "string", "latent space"),
            ("rank", "int64", "1 = most important"),
            ("dim", "string", "dimension"),
            ("score", "double", "share of standardised explained variance (unnormalised)"),
            ("importance", "double", "score / total"),
            ("cumulative", "double", "cumulative importance"),
            ("selected", "bool", "within the cumulative cutoff"),
            ("mode", "string", "full or diag"),
        ],
    ),
    _table(
        "gene_program_genes",
        "reports",
        "Top genes of each selected dim: the gene programs.",
        [
            ("latent", "string", "latent space"),
            ("program", "string", "<latent>:<dim>"),
            ("dim", "string", "dimension"),
            ("gene", "string", "gene"),
            ("loading", "double", "standardised loading"),
            ("score", "double", "ranking score (see rank_by, residualize)"),
            ("sign", "int64", "+1 / -1 pole"),
            ("rank", "int64", "1 = largest |score| in the program"),
            ("winner_dim", "string", "selected dim where the gene's |score| is largest"),
            ("sd", "double", "expression SD"),
            ("frac", "double", "fraction of observations expressing the gene"),
        ],
    ),
    _table(
        "gene_program_enrichment",
        "reports",
        "gseapy `enrich` of every program against GO BP (shipped, offline); background = measured genes.",
        [
            ("program", "string", "<latent>:<dim>, or shared / unique_<latent> of the comparison"),
            ("kind", "string", "dim or comparison"),
            ("Gene_set", "string", "GO_BP (shipped, offline)"),
            ("Term", "string", "GO term"),
            ("Overlap", "string", "hits / term genes in the background"),
            ("P-value", "double", "hypergeometric (gseapy)"),
            ("Adjusted P-value", "double", "BH over terms with a hit (gseapy)"),
            ("Odds Ratio", "double", "gseapy"),
            ("Combined Score", "double", "gseapy"),
            ("Genes", "string", "';'-joined hits"),
            ("n_genes", "int64", "program size"),
            ("n_in_background", "int64", "program genes tested"),
            ("background_size", "int64", "measured genes"),
            ("n_terms_tested", "int64", "terms with a background gene"),
            ("padj_all_terms", "double", "BH over all those terms"),
            ("note", "string", "why a program has no terms"),
        ],
    ),
    _table(
        "history_allfolds",
        "reports",
        "Every fold's training history of every fold-wise training (the KPNN on each network).",
        [
            ("model", "string", "fold-wise training (kpnn_full, kpnn_pruned)"),
            ("fold", "int64", "CV fold"),
            ("epoch", "int64", "epoch (1-based)"),
            ("train_loss", "double", "training loss"),
            ("valid_loss", "double", "loss on the inner validation split"),
            ("valid_auc", "double", "ROC-AUC on the inner validation split"),
        ],
    ),
    _table(
        "mean_history_allfolds",
        "reports",
        "Per model and epoch: each metric's mean, range and SD over folds; the loss-curve plot.",
        [
            ("model", "string", "fold-wise training (kpnn_full, kpnn_pruned)"),
            ("epoch", "int64", "epoch"),
            (
                "n_folds",
                "int64",
                "folds that reached this epoch (early stopping ends folds at different epochs)",
            ),
            ("train_loss", "double", "training loss: mean over those folds"),
            ("valid_loss", "double", "loss on the inner validation split: mean over those folds"),
            ("valid_auc", "double", "ROC-AUC on the inner validation split: mean over those folds"),
            ("train_loss_min", "double", "min of train_loss over those folds"),
            ("valid_loss_min", "double", "min of valid_loss over those folds"),
            ("valid_auc_min", "double", "min of valid_auc over those folds"),
            ("train_loss_max", "double", "max of train_loss over those folds"),
            ("valid_loss_max", "double", "max of valid_loss over those folds"),
            ("valid_auc_max", "double", "max of valid_auc over those folds"),
            ("train_loss_std", "double", "std of train_loss over those folds"),
            ("valid_loss_std", "double", "std of valid_loss over those folds"),
            ("valid_auc_std", "double", "std of valid_auc over those folds"),
        ],
    ),
    _table(
        "embedding_maps",
        "reports",
        "UMAP coordinates of every representation per fold; two maps per representation (cell type, batch).",
        [
            ("representation", "string", "embedding (see embeddings)"),
            ("level", "string", "metacell or cell"),
            ("fold", "int64", "fold"),
            ("split", "string", "train or test rows of the fold"),
            ("cell", "string", "metacell or cell"),
            ("umap1", "double", "UMAP coordinate 1"),
            ("umap2", "double", "UMAP coordinate 2"),
            ("cell_type", "string", "biological label"),
            ("batch", "string", "technical label"),
        ],
    ),
]
TABLES: dict[str, Table] = {t.name: t for t in _TABLES}


def table(name: str) -> Table:
    """The registry entry of table ``name`` (KeyError names the known tables)."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(
            f"table {name!r} is not in the registry (storage/tables.py): {sorted(TABLES)}"
        ) from None


def table_description(name: str) -> str:
    """What table ``name`` holds, in one sentence or two."""
    return table(name).description


def column_names(name: str) -> list[str]:
    """The columns of table ``name`` in file order."""
    return [c.name for c in table(name).columns]


def arrow_schema(name: str) -> pa.Schema:
    """The Arrow schema of table ``name``'s files."""
    return pa.schema([(c.name, pa.type_for_alias(c.type)) for c in table(name).columns])


def markdown_table_list() -> str:
    """The README's list of tables: name, group, whether per gene, what it holds."""
    lines = ["| table | group | per gene | what |", "|---|---|---|---|"]
    for t in TABLES.values():
        what = t.description.replace("|", "\\|")
        lines.append(f"| `{t.name}` | {t.group} | {'yes' if t.per_gene else ''} | {what} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table_list())
