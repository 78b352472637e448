"""A self-contained results folder that a collaborator opens without regnet, laid out and
documented the way scMEDAL documents its outputs folder:

    README.md                   what every file holds (tables with their columns, figures, models;
                                the tables described by the registry in storage/tables.py)
    run_config.yaml             the runs that made the results, their settings, the dataset
    tables/<table>.parquet      every table: the rows of its DuckDB view
    tables/<table>.csv          the same rows as CSV
    figures/<figure>.png        every figure
    models/gene=<gene>/model.pt each gene's checkpoint (torch.load(path, weights_only=True))

The folder is written beside the destination under a hidden name and renamed into place, so
a killed export never leaves half a folder at the destination. What a killed export leaves
beside it (its staging folder, or the old folder it had moved aside) carries its process id,
and the next export to the same destination clears it, putting the old folder back if the kill
came between the two renames.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import yaml

from regnet_assets.storage.catalog import CATALOG_FILE, refresh_catalog, table_names
from regnet_assets.storage.tables import TABLES


class ExportError(ValueError):
    """The export cannot go ahead (nothing was written)."""


@dataclass
class TableInfo:
    """What the README says about one table."""

    description: str = ""
    group: str = ""
    per_gene: bool = False
    columns: dict[str, str] = field(default_factory=dict)


def registry_info() -> dict[str, TableInfo]:
    """What the README says about each table of the registry (``storage/tables.py``)."""
    return {
        t.name: TableInfo(t.description, t.group, t.per_gene, {c.name: c.meaning for c in t.columns})
        for t in TABLES.values()
    }


def _check_destination(root: Path, dest: Path, force: bool) -> None:
    if dest == root or root in dest.parents or dest in root.parents:
        raise ExportError(
            f"export folder {dest} overlaps the storage folder {root}: choose a folder outside it"
        )
    if dest.exists():
        if not dest.is_dir():
            raise ExportError(f"export folder {dest} exists and is not a folder")
        if any(dest.iterdir()) and not force:
            raise ExportError(
                f"export folder {dest} is not empty; choose another or pass --force to replace it"
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _clear_leftovers(dest: Path) -> None:
    """Remove what killed exports to ``dest`` left beside it (``.NAME.partial-PID-*`` staging
    folders and ``.NAME.old-PID`` folders moved aside); an export still running is left alone."""
    for leftover in sorted(dest.parent.glob(f".{dest.name}.*")):
        kind, _, rest = leftover.name[len(dest.name) + 2 :].partition("-")
        pid = rest.split("-")[0]
        if kind not in ("partial", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and not dest.exists():
            os.replace(leftover, dest)  # killed between moving the old folder aside and renaming
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def export_results(
    root: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    force: bool = False,
    tables: dict[str, TableInfo] | None = None,
    figures: dict[str, str] | None = None,
    provenance: dict | None = None,
) -> dict:
    """Write the results folder ``dest`` from the storage folder ``root``; returns what was written.

    ``tables``/``figures``: descriptions for the README (``tables`` defaults to the registry's);
    ``provenance``: written as run_config.yaml.
    """
    root, dest = Path(root).resolve(), Path(dest).absolute()
    _clear_leftovers(dest)
    _check_destination(root, dest, force)
    if not table_names(root):
        raise ExportError(f"no result tables in {root}: run `regnet run` (or materialize in the UI) first")
    names = refresh_catalog(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-{os.getpid()}-", dir=dest.parent))
    try:
        rows = _write_tables(root, staging / "tables", names)
        pngs = _copy(root / "figures", staging / "figures", "*.png")
        checkpoints = _copy(root / "models", staging / "models", "*/model.pt")
        provenance = provenance or {}
        (staging / "run_config.yaml").write_text(
            yaml.safe_dump(provenance, sort_keys=False, allow_unicode=True)
        )
        known = registry_info() if tables is None else tables
        info = {name: known.get(name, TableInfo()) for name in names}
        (staging / "README.md").write_text(
            _readme(root, staging, rows, info, pngs, figures or {}, checkpoints, provenance)
        )
        staging.chmod(0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(staging, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, dest)
    return {"tables": rows, "figures": pngs, "models": len(checkpoints)}


def _write_tables(root: Path, out: Path, names: list[str]) -> dict[str, int]:
    """Each view's rows, as DuckDB returns them, to Parquet and CSV; ``{table: rows}``."""
    out.mkdir()
    rows = {}
    with duckdb.connect(str(root / CATALOG_FILE), read_only=True) as con:
        for name in names:
            for fmt, options in (("parquet", "FORMAT parquet"), ("csv", "FORMAT csv, HEADER true")):
                path = str(out / f"{name}.{fmt}").replace("'", "''")
                con.execute(f"COPY (SELECT * FROM \"{name}\") TO '{path}' ({options})")
            rows[name] = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    return rows


def _copy(src: Path, out: Path, pattern: str) -> list[str]:
    """Copy the files matching ``pattern`` under ``src`` (temp files of a running write are hidden
    names and do not match); their paths relative to ``out``'s parent."""
    copied = []
    for path in sorted(src.glob(pattern)) if src.is_dir() else []:
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(str(target.relative_to(out.parent)))
    return copied


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _readme(
    root: Path,
    folder: Path,
    rows: dict[str, int],
    info: dict[str, TableInfo],
    pngs: list[str],
    figures: dict[str, str],
    checkpoints: list[str],
    provenance: dict,
) -> str:
    when = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        "# regnet results",
        "",
        f"Exported {when} from `{root}`. Nothing here needs regnet: the tables open in pandas, R (arrow), "
        "DuckDB, Spark or a spreadsheet (CSV); the figures are PNG; the checkpoints load with PyTorch.",
        "",
        "| path | what |",
        "|---|---|",
        "| `README.md` | this file |",
        "| `run_config.yaml` | the dataset settings and every run that made these results: its effective "
        "config (defaults included), genes and start time |",
        "| `tables/<table>.parquet` | one file per table (typed) |",
        "| `tables/<table>.csv` | the same rows as CSV with a header |",
        "| `figures/<figure>.png` | the plots shown in the Dagster UI |",
        "| `models/gene=<gene>/model.pt` | each gene's model checkpoint |",
        "",
        "## Tables",
        "",
        "| table | rows | group | per gene | what |",
        "|---|---|---|---|---|",
    ]
    for name, n in rows.items():
        t = info[name]
        lines.append(
            f"| `{name}` | {n} | {t.group} | {'yes' if t.per_gene else ''} | {_md_cell(t.description)} |"
        )
    with duckdb.connect() as con:
        for name in rows:
            path = str(folder / "tables" / f"{name}.parquet").replace("'", "''")
            schema = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
            lines += [
                "",
                f"### `{name}`",
                "",
                _md_cell(info[name].description) or "(no description)",
                "",
                "| column | type | meaning |",
                "|---|---|---|",
            ]
            lines += [
                f"| `{col}` | {kind} | {_md_cell(info[name].columns.get(col, ''))} |"
                for col, kind, *_ in schema
            ]
    lines += ["", "## Figures", "", "| file | what |", "|---|---|"]
    lines += [f"| `{p}` | {_md_cell(figures.get(Path(p).stem, ''))} |" for p in pngs] or ["| (none) | |"]
    lines += [
        "",
        "## Models",
        "",
        f"{len(checkpoints)} checkpoint(s) under `models/`. Each is a dict saved with `torch.save`: "
        "`state` (the model's tensors at its best validation epoch), `history` (per-epoch losses and "
        "validation Spearman), `predictions` (metacell, split, observed, predicted) and `summary` "
        "(sizes, best epoch, losses). Read it with `torch.load(path, weights_only=True)`; rebuilding "
        "the network itself needs regnet's `load_gene_model`.",
        "",
        "## Run configuration",
        "",
    ]
    dataset = provenance.get("dataset") or {}
    runs = provenance.get("runs") or []
    if dataset:
        lines.append("Dataset: " + ", ".join(f"{k} = `{v}`" for k, v in dataset.items()) + ".")
    lines.append(
        f"{len(runs)} run(s) made the current results; `run_config.yaml` lists each with its "
        "assets, genes, tags and the effective config of each step."
        if runs
        else "The Dagster instance that made these results was not available, so no runs are listed."
    )
    return "\n".join(lines) + "\n"
