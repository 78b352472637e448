"""The ``regnet`` command: run the asset graph, query the tables, open the UI.

Built on Dagster's own APIs (``materialize`` against the persistent instance), so runs
started here appear in the UI with their logs, and the UI can re-run them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("default", "small", "large", "hard")  # the simulator's (importing it here would slow --help)


def _prepare_home(root: Path) -> Path:
    """Use ``<storage>/dagster_home`` as DAGSTER_HOME unless one is set, with our dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or root / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = PROJECT_ROOT / "dagster.yaml"
    if config.exists() and not (home / "dagster.yaml").exists():
        shutil.copy(config, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _storage(args) -> Path:
    from regnet_assets.storage import storage_root

    root = storage_root(args.storage)
    os.environ["REGNET_STORAGE"] = str(root)
    return root


def _run_config(text: str | None) -> dict:
    """``--config``: a YAML/JSON file or inline JSON/YAML run config (``{"ops": {...}}``)."""
    import yaml

    if not text:
        return {}
    path = Path(text)
    value = yaml.safe_load(path.read_text() if path.is_file() else text)
    if not isinstance(value, dict):
        raise SystemExit(f'--config must be a mapping such as {{"ops": ...}}, got {text!r}')
    return value


def _genes(text: str | None) -> list[str] | None:
    if not text:
        return None
    path = Path(text)
    raw = path.read_text() if path.is_file() else text
    return [g for g in raw.replace(",", " ").split() if g]


def _progress_writer():
    """Overwrite one line on a terminal (clearing what a longer line left); one line per update
    otherwise (logs, CI)."""
    if sys.stderr.isatty():
        return lambda line: print("\r" + line + "\x1b[K", end="", file=sys.stderr, flush=True)
    return lambda line: print(line, file=sys.stderr, flush=True)


def cmd_simulate(args) -> int:
    """`regnet simulate PATH`: write the simulated dataset of a preset, for `regnet run --dataset`
    or other tools."""
    import time

    from regnet_assets.science.dataset.simulator import SimulationConfig, write_simulated

    config = SimulationConfig.preset(args.preset, seed=args.seed)
    print(
        f"simulating {config.n_cells:,} cells, {config.n_target_genes:,} target genes "
        f"({args.preset} preset, seed {args.seed}) ...",
        file=sys.stderr,
    )
    start = time.perf_counter()
    path = write_simulated(args.path, config)
    print(f"wrote {path} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - start:.0f} s")
    return 0


def cmd_run(args) -> int:
    """`regnet run`: materialize the graph with progress; exit non-zero naming what failed."""
    import dagster as dg

    from regnet_assets.defs.resources import DatasetResource
    from regnet_assets.operations.runner import SelectionError, run_graph

    root = _storage(args)
    dataset = DatasetResource(
        path=str(Path(args.dataset).resolve()) if args.dataset else "", preset=args.preset, seed=args.seed
    )
    if dataset.path:
        error = _contract_error(dataset)
        if error:  # refused before any run exists: the asset graph and the results stay as they were
            print(f"regnet run: {args.dataset} breaks the dataset contract: {error}", file=sys.stderr)
            print("No run was launched; earlier results are unchanged.", file=sys.stderr)
            return 2
    _prepare_home(root)
    with dg.DagsterInstance.get() as instance:
        try:
            summary = run_graph(
                instance,
                root,
                dataset,
                device=args.device,
                batch_size=args.genes_per_run,
                echo=print,
                select=args.select,
                genes=_genes(args.genes),
                run_config=_run_config(args.config),
                progress=_progress_writer(),
                missing_only=args.missing_only,
            )
        except SelectionError as error:
            print(f"regnet run: {error}", file=sys.stderr)
            return 2
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(
        f"\n{summary.runs} run(s) in {summary.seconds:.0f} s: {len(summary.assets)} asset(s) "
        f"materialized; genes {summary.genes_done}/{summary.genes_total} done "
        f"({summary.genes_new} newly registered)"
    )
    if summary.failures:
        print("regnet run failed:", file=sys.stderr)
        for failure in summary.failures:
            print(f"  {failure}", file=sys.stderr)
        print(
            f"Logs: `regnet ui --storage {root}` (Runs page); `regnet status` lists failed genes.",
            file=sys.stderr,
        )
        return 1
    _print_summary(root)
    return 0


def _contract_error(dataset) -> str:
    """The first contract violation of the user's file (what the ``multiome`` asset would fail
    on), or '' when it is valid; checked before a run is launched so a bad file fails in seconds
    and records nothing."""
    from regnet_assets.science.dataset.reading import DatasetError, read_multiome
    from regnet_assets.science.dataset.validation import validate_multiome

    try:
        validate_multiome(read_multiome(dataset.path), groupby=dataset.groupby)
    except DatasetError as error:
        return str(error)
    return ""


def _print_summary(root: Path) -> None:
    from regnet_assets.storage import query, refresh_catalog

    names = refresh_catalog(root)
    print(f"\nResults are in {root}")
    print(f"  Parquet tables: {root}/<table>/...  DuckDB catalog: {root / 'regnet.duckdb'}")
    print(f"  Tables: {', '.join(names)}")
    sample = "SELECT cell_type, count(*) AS metacells FROM metacells GROUP BY cell_type ORDER BY cell_type"
    print(f'\nSample query:\n  regnet sql "{sample}"')
    print(query(root, sample).to_string(index=False))


def cmd_sql(args) -> int:
    """`regnet sql`: run a read-only SQL query over the result tables and print it."""
    import duckdb

    from regnet_assets.storage import query

    root = _storage(args)
    if args.format == "parquet" and not args.output:
        print("regnet sql: --format parquet needs --output PATH", file=sys.stderr)
        return 2
    try:
        result = query(root, args.query)
    except duckdb.Error as error:
        print(f"SQL error: {error}", file=sys.stderr)
        return 1
    if args.format == "table":
        text = result.to_string(index=False, max_rows=args.max_rows)
        if args.output:
            Path(args.output).write_text(text + "\n")
        else:
            print(text)
    elif args.format == "csv":
        if args.output:
            result.to_csv(args.output, index=False)
        else:
            result.to_csv(sys.stdout, index=False)
    else:
        result.to_parquet(args.output, index=False)
    if args.output:
        print(f"{len(result)} row(s) written to {args.output}", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    """`regnet status`: per-asset and per-gene materialization status."""
    import dagster as dg

    from regnet_assets.operations.status import status_lines

    root = _storage(args)
    _prepare_home(root)
    with dg.DagsterInstance.get() as instance:
        lines = status_lines(instance, examples=args.examples)
        genes = len(instance.get_dynamic_partitions("genes"))
    print(f"Instance: {os.environ['DAGSTER_HOME']}   storage: {root}   gene partitions: {genes}")
    print("\n".join(lines))
    return 0


def cmd_backfill(args) -> int:
    """`regnet backfill`: launch a backfill of gene partitions in batched runs."""
    import dagster as dg

    from regnet_assets.operations.runner import SelectionError, submit_backfill

    root = _storage(args)
    _prepare_home(root)
    with dg.DagsterInstance.get() as instance:
        try:
            backfill_id = submit_backfill(
                instance, genes=_genes(args.genes), downstream=not args.no_downstream
            )
        except SelectionError as error:
            print(f"regnet backfill: {error}", file=sys.stderr)
            return 2
    print(
        f"backfill {backfill_id} submitted to {os.environ['DAGSTER_HOME']}; the daemon of "
        "`regnet ui` (or `dagster-daemon run`) executes it in batched runs."
    )
    return 0


def cmd_export(args) -> int:
    """`regnet export`: write a self-contained, documented results folder."""
    from regnet_assets.storage.export import ExportError, export_results

    root = _storage(args)
    figures, provenance = _export_descriptions(root)
    try:
        done = export_results(root, args.path, force=args.force, figures=figures, provenance=provenance)
    except ExportError as error:
        print(f"regnet export: {error}", file=sys.stderr)
        return 2
    print(
        f"Exported {len(done['tables'])} table(s) (Parquet + CSV), {len(done['figures'])} figure(s) and "
        f"{done['models']} model checkpoint(s) to {Path(args.path).absolute()}; see its README.md"
    )
    return 0


def _export_descriptions(root: Path):
    """The README's figure descriptions and the run provenance, from the instance that made the
    results when it exists (the tables are described by the registry, storage/tables.py)."""
    import dagster as dg

    from regnet_assets.defs.definitions import ALL_ASSETS, defs
    from regnet_assets.operations.provenance import figure_descriptions, run_provenance

    home = Path(os.environ.get("DAGSTER_HOME") or root / "dagster_home")
    if not (home / "dagster.yaml").exists() and not (home / "storage").exists():
        return {}, {}
    _prepare_home(root)
    keys = sorted({k for a in ALL_ASSETS for k in a.keys}, key=lambda k: k.to_user_string())
    with dg.DagsterInstance.get() as instance:
        return figure_descriptions(instance, defs), run_provenance(instance, defs, keys)


def cmd_ui(args) -> int:
    """`regnet ui`: serve the Dagster UI on a loopback address."""
    root = _storage(args)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: the UI on {args.host} can launch runs and read results; anyone who can "
            "reach this port can use it (the Dagster UI has no login)",
            file=sys.stderr,
        )
    _prepare_home(root)
    command = [
        "dagster",
        "dev",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    return subprocess.call(command, cwd=PROJECT_ROOT)


def parser() -> argparse.ArgumentParser:
    """The `regnet` argument parser with one sub-command per front-door task."""
    top = argparse.ArgumentParser(prog="regnet", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    def with_storage(p):
        p.add_argument("--storage", help="results folder (default: $REGNET_STORAGE or ./regnet_storage)")
        return p

    def add_preset(p):
        p.add_argument(
            "--preset",
            default="default",
            choices=list(PRESETS),
            help="size of the simulated dataset: default (make run: 3,000 cells, 24 genes), small "
            "(tests), large (10x-Multiome-sized: 50,000 cells, 20,000 genes, 2,000 targets, "
            "~100,000 peaks), hard (default size; the motif scan misses some true edges, "
            "co-expressed paralog decoys, cooperative TF pairs, more type-specific edges)",
        )
        p.add_argument("--seed", type=int, default=0, help="simulator seed")

    run = with_storage(sub.add_parser("run", help="materialize the asset graph (or --select a part)"))
    run.add_argument(
        "--select",
        help="Dagster asset selection, e.g. 'group:models', "
        "'key:gene_models+', 'multiome, genes' (default: everything)",
    )
    run.add_argument(
        "--genes",
        help="only these genes (comma/space separated, or a file): "
        "registered partitions, in batched runs over contiguous ranges",
    )
    run.add_argument(
        "--missing-only",
        action="store_true",
        help="only what is missing, failed or older than its inputs: resume an interrupted "
        "run, or train new genes without retraining the others",
    )
    run.add_argument(
        "--config",
        help="run config as YAML/JSON (file or inline), e.g. "
        '\'{"ops": {"gene_models": {"config": {"epochs": 5}}}}\'',
    )
    run.add_argument("--dataset", help="a .h5mu file (default: the simulated dataset)")
    add_preset(run)
    run.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:N")
    run.add_argument(
        "--genes-per-run",
        type=int,
        default=None,
        help="genes trained together per run (default: the assets' backfill policy)",
    )
    run.set_defaults(func=cmd_run)

    simulate = sub.add_parser("simulate", help="only write a simulated .h5mu (with its ground truth)")
    simulate.add_argument("path", help="the .h5mu to write (replaced atomically)")
    add_preset(simulate)
    simulate.set_defaults(func=cmd_simulate)

    sql = with_storage(sub.add_parser("sql", help="query the result tables read-only"))
    sql.add_argument("query", help='e.g. "SELECT * FROM metacells LIMIT 5"')
    sql.add_argument("--max-rows", type=int, default=50, help="rows printed in table format")
    sql.add_argument("--format", default="table", choices=["table", "csv", "parquet"])
    sql.add_argument("--output", help="write the result to this file (required for parquet)")
    sql.set_defaults(func=cmd_sql)

    status = with_storage(
        sub.add_parser("status", help="which assets and genes are materialized, stale or failed")
    )
    status.add_argument("--examples", type=int, default=5, help="genes listed per state")
    status.set_defaults(func=cmd_status)

    backfill = with_storage(
        sub.add_parser(
            "backfill", help="submit a backfill of the gene assets (executed by the daemon of `regnet ui`)"
        )
    )
    backfill.add_argument("--genes", help="only these genes (default: all registered genes)")
    backfill.add_argument(
        "--no-downstream", action="store_true", help="only the gene assets, not the tables downstream"
    )
    backfill.set_defaults(func=cmd_backfill)

    export = with_storage(
        sub.add_parser(
            "export",
            help="write a self-contained results folder: every table "
            "as Parquet and CSV, figures, checkpoints, run config, README",
        )
    )
    export.add_argument("path", help="folder to create (must be empty or absent unless --force)")
    export.add_argument("--force", action="store_true", help="replace the folder's contents")
    export.set_defaults(func=cmd_export)

    ui = with_storage(sub.add_parser("ui", help="start the Dagster UI (127.0.0.1 unless --host)"))
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `regnet` console script."""
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
