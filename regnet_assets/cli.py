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


def cmd_run(args) -> int:
    import dagster as dg

    from regnet_assets.defs.resources import DatasetResource
    from regnet_assets.defs.runner import run_graph

    root = _storage(args)
    _prepare_home(root)
    dataset = DatasetResource(path=str(Path(args.dataset).resolve()) if args.dataset else "",
                              preset=args.preset, seed=args.seed)
    with dg.DagsterInstance.get() as instance:
        failure = run_graph(instance, root, dataset, device=args.device,
                            genes_per_run=args.genes_per_run, echo=print)
    if failure:
        print(f"regnet run failed: {failure}", file=sys.stderr)
        return 1
    _print_summary(root)
    return 0


def _print_summary(root: Path) -> None:
    from regnet_assets.storage import query, refresh_catalog

    names = refresh_catalog(root)
    print(f"\nResults are in {root}")
    print(f"  Parquet tables: {root}/<table>/...  DuckDB catalog: {root / 'regnet.duckdb'}")
    print(f"  Tables: {', '.join(names)}")
    sample = "SELECT cell_type, count(*) AS metacells FROM metacells GROUP BY cell_type ORDER BY cell_type"
    print(f"\nSample query:\n  regnet sql \"{sample}\"")
    print(query(root, sample).to_string(index=False))


def cmd_sql(args) -> int:
    import duckdb

    from regnet_assets.storage import query

    root = _storage(args)
    try:
        result = query(root, args.query)
    except duckdb.Error as error:
        print(f"SQL error: {error}", file=sys.stderr)
        return 1
    print(result.to_string(index=False, max_rows=args.max_rows))
    return 0


def cmd_ui(args) -> int:
    root = _storage(args)
    _prepare_home(root)
    command = ["dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
               "-h", args.host, "-p", str(args.port)]
    return subprocess.call(command, cwd=PROJECT_ROOT)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="regnet", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    def with_storage(p):
        p.add_argument("--storage", help="results folder (default: $REGNET_STORAGE or ./regnet_storage)")
        return p

    run = with_storage(sub.add_parser("run", help="materialize the whole asset graph"))
    run.add_argument("--dataset", help="a .h5mu file (default: the simulated dataset)")
    run.add_argument("--preset", default="default", choices=["default", "small"],
                     help="size of the simulated dataset")
    run.add_argument("--seed", type=int, default=0, help="simulator seed")
    run.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:N")
    run.add_argument("--genes-per-run", type=int, default=64, help="genes trained together per run")
    run.set_defaults(func=cmd_run)

    sql = with_storage(sub.add_parser("sql", help="query the result tables read-only"))
    sql.add_argument("query", help='e.g. "SELECT * FROM metacells LIMIT 5"')
    sql.add_argument("--max-rows", type=int, default=50)
    sql.set_defaults(func=cmd_sql)

    ui = with_storage(sub.add_parser("ui", help="start the Dagster UI"))
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
