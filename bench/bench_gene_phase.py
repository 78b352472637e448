"""Benchmark: every gene through Dagster at real size, against the default dataset in the same run.

On the folders that ``bench/bench_scale.py --keep DIR`` leaves (the dataset group materialized
in ``storage_default`` and ``storage_large``), with a short training (``--epochs``, default 2):
``regnet run --select key:gene_models+`` registers the genes as partitions, trains and
attributes them in batched runs of the backfill policy's size, then materializes every fan-in
(network, recovery, embeddings, programs, reports, the DuckDB catalog). It prints wall time,
peak memory (largest process and whole tree), each step's summed seconds and the large / default
ratio per gene; then the seconds of ``regnet status`` and of a ``regnet sql`` count over
``tf_attribution``; then, in headless Chromium, the seconds until the ``gene_models`` asset
page lists its partitions and until one gene's partition page shows its valid Spearman.

    python bench/bench_scale.py --keep DIR            # first: the dataset group at both sizes
    python bench/bench_gene_phase.py DIR [--epochs 2] [--no-ui]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import REGNET, ROOT, _measure, _step_seconds  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _genes(storage: Path) -> list[str]:
    import pandas as pd

    return list(pd.read_parquet(storage / "genes").query("modelable")["gene"])


def gene_phase(folder: Path, preset: str, epochs: int) -> dict:
    """The gene partitions and every fan-in after them, timed; then status and sql."""
    storage, path = folder / f"storage_{preset}", folder / f"{preset}.h5mu"
    if not (storage / "gene_tf_candidates").exists():
        raise SystemExit(f"{storage}: no dataset group here; run bench/bench_scale.py --keep {folder}")
    config = json.dumps({"ops": {"gene_models": {"config": {"epochs": epochs}}}})
    base = [*REGNET, "run", "--storage", str(storage), "--dataset", str(path)]
    since = time.time()
    run = _measure([*base, "--select", "key:gene_models+", "--config", config], _env())
    storage_flag = ["--storage", str(storage)]
    status = _measure([*REGNET, "status", *storage_flag], _env())
    sql = _measure([*REGNET, "sql", "SELECT count(*) AS n FROM tf_attribution", *storage_flag], _env())
    return {
        "genes": len(_genes(storage)),
        "run": run,
        "steps": _step_seconds(storage, since),
        "status_seconds": status["seconds"],
        "sql_seconds": sql["seconds"],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ui_pages(folder: Path, preset: str) -> dict:
    """Seconds until the gene_models page lists its partitions, and until a gene's page shows
    its valid Spearman, in headless Chromium against ``dagster-webserver`` on the storage."""
    import pandas as pd
    from playwright.sync_api import sync_playwright

    storage = folder / f"storage_{preset}"
    genes = _genes(storage)
    gene = genes[-1]
    valid = pd.read_parquet(storage / "gene_correlation" / f"gene={gene}")["valid_spearman"].item()
    port = _free_port()
    env = {**_env(), "DAGSTER_HOME": str(storage / "dagster_home"), "REGNET_STORAGE": str(storage)}
    exe = shutil.which("dagster-webserver") or str(Path(sys.executable).parent / "dagster-webserver")
    log = open(folder / f"webserver_{preset}.log", "w")
    server = subprocess.Popen(
        [exe, "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1800, "height": 1400})
            deadline = time.monotonic() + 300
            while True:  # the webserver, then its code location
                try:
                    body = page.request.post(f"{url}/graphql", data={"query": LOCATION}).json()
                    entries = body["data"]["workspaceOrError"]["locationEntries"]
                except Exception:  # noqa: BLE001 - not listening yet
                    entries = []
                if entries and entries[0]["loadStatus"] == "LOADED":
                    break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the webserver did not load; see {log.name}")
                time.sleep(1)
            start = time.perf_counter()
            page.goto(f"{url}/assets/gene_models?view=partitions", timeout=300_000)
            page.get_by_text(genes[0], exact=True).first.wait_for(timeout=300_000)
            partitions = time.perf_counter() - start
            page.screenshot(path=str(folder / f"gene_models_partitions_{preset}.png"))
            start = time.perf_counter()
            page.goto(f"{url}/assets/gene_models?view=partitions&partition={gene}", timeout=300_000)
            page.get_by_text("valid_spearman").first.wait_for(timeout=300_000)
            shown = f"{float(f'{valid:.4g}')}" in page.content()
            partition = time.perf_counter() - start
            page.screenshot(path=str(folder / f"gene_models_{gene}_{preset}.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    return {"partitions_page_seconds": partitions, "partition_page_seconds": partition, "valid_shown": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the --keep folder of bench/bench_scale.py")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (short: this measures scale)")
    parser.add_argument("--no-ui", action="store_true", help="skip the Chromium page loads")
    args = parser.parse_args()
    folder = Path(args.folder)
    results = {}
    for preset in ("default", "large"):
        results[preset] = gene_phase(folder, preset, args.epochs)
        if not args.no_ui:
            results[preset]["ui"] = ui_pages(folder, preset)
    base, large = results["default"], results["large"]
    print(f"\n{'':34}{'default':>12}{'large':>12}{'ratio':>8}{'per gene':>10}")
    per_gene = large["genes"] / base["genes"]
    print(f"{'genes':34}{base['genes']:>12,}{large['genes']:>12,}{per_gene:>8.1f}")
    rows = [("run seconds", base["run"]["seconds"], large["run"]["seconds"], True)]
    rows += [("run peak RSS, one process (GiB)", base["run"]["rss_gib"], large["run"]["rss_gib"], False)]
    rows += [("run peak RSS, tree (GiB)", base["run"]["tree_gib"], large["run"]["tree_gib"], False)]
    rows += [
        (f"  step {k} (s)", base["steps"].get(k, float("nan")), v, True)
        for k, v in sorted(large["steps"].items())
    ]
    rows += [("regnet status (s)", base["status_seconds"], large["status_seconds"], False)]
    rows += [("regnet sql count (s)", base["sql_seconds"], large["sql_seconds"], False)]
    if "ui" in large:
        for key in ("partitions_page_seconds", "partition_page_seconds"):
            rows.append((f"UI {key.replace('_', ' ')}", base["ui"][key], large["ui"][key], False))
    for name, a, b, scales in rows:
        ratio = b / a if a else float("nan")
        gene_ratio = f"{ratio / per_gene:>10.2f}" if scales else ""
        print(f"{name:34}{a:>12.2f}{b:>12.2f}{ratio:>8.1f}{gene_ratio}")
    if "ui" in large:
        print(f"UI: the partition page shows that gene's valid Spearman: {large['ui']['valid_shown']}")
    (folder / "bench_gene_phase.json").write_text(json.dumps(results, indent=2))
    print(f"results: {folder / 'bench_gene_phase.json'}")


if __name__ == "__main__":
    main()
