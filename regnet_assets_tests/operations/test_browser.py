"""The Dagster UI of regnet in a real browser (headless Debian Chromium driven by playwright).

Starts ``dagster-webserver`` on 127.0.0.1 with a throw-away DAGSTER_HOME and storage, checks
that the global lineage graph shows every asset group with its number of assets and that each
group's page lists every asset of regnet, launches a materialization of the ``dataset`` group
through the UI's GraphQL endpoint (from the page, with the small simulated dataset), waits
for it to succeed, and saves screenshots to ``$REGNET_ARTIFACTS`` (default
``regnet_assets_tests/artifacts/``, git-ignored) for CI to keep.

The daemon is not started: runs are launched directly (``DefaultRunCoordinator``), so the
sensors and the nightly automation stay quiet while the test runs.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("REGNET_ARTIFACTS") or ROOT / "regnet_assets_tests" / "artifacts")
LOCATION = "regnet_assets"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - CI installs it (.[dev])
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(
        sync_playwright is None, reason="Python playwright is not installed (pip install .[dev])"
    ),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is missing (Debian package `chromium`; .ci/run installs it)",
    ),
]

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN_STATUS = """query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(request, url, query, variables=None):
    response = request.post(f"{url}/graphql", data={"query": query, "variables": variables or {}})
    assert response.ok, response.text()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home, storage = tmp_path_factory.mktemp("dagster_home"), tmp_path_factory.mktemp("storage")
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "REGNET_STORAGE": str(storage)}
    exe = shutil.which("dagster-webserver") or str(Path(sys.executable).parent / "dagster-webserver")
    log = open(home / "webserver.log", "w")
    proc = subprocess.Popen(
        [exe, "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, storage, home, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(home / "webserver.log", ARTIFACTS / "webserver.log")


@pytest.fixture(scope="module")
def page(webserver):
    url, _, home, proc = webserver
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1400})
        deadline = time.monotonic() + 180
        while True:  # the webserver, then the code location (a subprocess importing regnet)
            assert proc.poll() is None, (home / "webserver.log").read_text()[-3000:]
            try:
                entries = _graphql(page.request, url, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            except Exception:  # noqa: BLE001 - not listening yet
                entries = []
            if entries and entries[0]["loadStatus"] == "LOADED":
                assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries
                break
            assert time.monotonic() < deadline, "the webserver did not load regnet within 180 s"
            time.sleep(1)
        yield page
        browser.close()


def _expected_groups() -> dict[str, set[str]]:
    from regnet_assets.defs.definitions import defs

    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    return groups


def _group_boxes(text: str) -> dict[str, set[int]]:
    """Asset counts shown under each group name of the collapsed lineage graph: "9 assets
    (fetching statuses)" while loading, then one number per status ("3", "2")."""
    lines = [line.strip() for line in text.split("\n")]
    out: dict[str, set[int]] = {}
    for i, name in enumerate(lines):
        numbers, total = [], None
        for line in lines[i + 1 :]:
            match = re.match(r"^(\d+)( assets?\b.*)?$", line)
            if not match:
                break
            if match.group(2):
                total = int(match.group(1))
                break
            numbers.append(int(match.group(1)))
        if total is not None or numbers:
            out.setdefault(name, set()).add(total if total is not None else sum(numbers))
    return out


def _dismiss_popups(page, wait_ms: int = 0):
    """Close the "Join the Dagster community" dialog if it is (or, within wait_ms, gets) open."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.first.click(timeout=wait_ms or 500)
    except Exception:  # noqa: BLE001 - no dialog
        pass


def test_lineage_graph_shows_every_group_and_asset(webserver, page):
    url = webserver[0]
    groups = _expected_groups()
    assert {"dataset", "models", "attribution", "network", "catalog"} <= set(groups)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # wide enough that the whole graph (six group columns since the network group follows the
    # attribution group) fits at a zoom where the UI still prints each group's asset count
    page.set_viewport_size({"width": 2400, "height": 1400})
    page.goto(f"{url}/asset-groups", wait_until="networkidle", timeout=120_000)
    _dismiss_popups(page)
    missing = dict(groups)
    deadline = time.monotonic() + 90
    while missing and time.monotonic() < deadline:  # each group is a box: its name and asset count
        counts = _group_boxes(page.inner_text("body"))
        missing = {g: a for g, a in missing.items() if len(a) not in counts.get(g, set())}
        time.sleep(1)
    assert not missing, ({g: len(a) for g, a in missing.items()}, page.inner_text("body")[:2000])
    _dismiss_popups(page, 3000)
    page.screenshot(path=str(ARTIFACTS / "lineage.png"), full_page=True)

    for group, assets in groups.items():  # and every asset of the group on the group's page
        page.goto(
            f"{url}/locations/{LOCATION}/asset-groups/{group}/list", wait_until="networkidle", timeout=120_000
        )
        page.get_by_text(sorted(assets)[0], exact=True).first.wait_for(timeout=60_000)
        shown = set(page.inner_text("body").split("\n"))
        assert assets <= shown, (group, sorted(assets - shown))
    page.screenshot(path=str(ARTIFACTS / f"group_{group}.png"), full_page=True)
    page.set_viewport_size({"width": 1800, "height": 1400})  # the module's other pages as before


def _launch_and_wait(page, url, params, seconds=540) -> tuple[str, str | None]:
    """Launch a run through GraphQL (as the UI's button does) and wait for it to end."""
    launched = _graphql(page.request, url, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + seconds  # ~40 s on an idle 2-core machine; far more under load
    status = None
    while time.monotonic() < deadline:
        status = _graphql(page.request, url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    return run_id, status


def test_materialize_the_dataset_group_from_the_ui(webserver, page):
    url, storage, _, _ = webserver
    dataset = sorted(_expected_groups()["dataset"])
    page.goto(
        f"{url}/locations/{LOCATION}/asset-groups/dataset/lineage", wait_until="networkidle", timeout=120_000
    )
    _dismiss_popups(page)
    # the page renders after networkidle on a loaded machine: wait for the button, do not count
    page.get_by_role("button", name=re.compile("Materialize all")).first.wait_for(timeout=60_000)

    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": [k]} for k in dataset],
        },
        "runConfigData": {"resources": {"dataset_config": {"config": {"preset": "small"}}}},
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "regnet/test", "value": "browser"}]},
    }
    run_id, status = _launch_and_wait(page, url, params)
    page.goto(f"{url}/runs/{run_id}", wait_until="networkidle", timeout=120_000)
    if status in ("SUCCESS", "FAILURE"):
        page.get_by_text(re.compile("Success|Failure")).first.wait_for(timeout=60_000)
    _dismiss_popups(page)
    page.screenshot(path=str(ARTIFACTS / "dataset_run.png"), full_page=True)
    assert status == "SUCCESS", status
    assert (storage / "genes" / "part.parquet").exists() and (storage / "metacells" / "part.parquet").exists()

    page.goto(
        f"{url}/locations/{LOCATION}/asset-groups/dataset/list", wait_until="networkidle", timeout=120_000
    )
    page.wait_for_timeout(2000)
    _dismiss_popups(page)
    page.screenshot(path=str(ARTIFACTS / "dataset_group.png"), full_page=True)


def test_a_gene_partition_page_shows_that_genes_valid_spearman(webserver, page):
    """#16: after a two-gene run, a gene's partition page of gene_models carries its own score."""
    import dagster as dg
    import pandas as pd

    url, storage, home, _ = webserver
    assert (storage / "genes" / "part.parquet").exists()  # the dataset group test ran first
    genes = sorted(pd.read_parquet(storage / "genes" / "part.parquet").query("modelable")["gene"])[:2]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("genes", genes)
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [
                {"path": [k]} for k in ("gene_models", "training_history", "predictions", "gene_correlation")
            ],
        },
        "runConfigData": {
            "resources": {"dataset_config": {"config": {"preset": "small"}}},
            "ops": {"gene_models": {"config": {"epochs": 1}}},
        },
        "mode": "default",
        "executionMetadata": {
            "tags": [
                {"key": "dagster/asset_partition_range_start", "value": genes[0]},
                {"key": "dagster/asset_partition_range_end", "value": genes[1]},
                {"key": "regnet/test", "value": "browser"},
            ]
        },
    }
    _, status = _launch_and_wait(page, url, params)
    assert status == "SUCCESS", status
    gene = genes[1]
    valid = pd.read_parquet(storage / "gene_correlation" / f"gene={gene}" / "part.parquet")[
        "valid_spearman"
    ].item()
    page.goto(
        f"{url}/assets/gene_models?view=partitions&partition={gene}",
        wait_until="networkidle",
        timeout=120_000,
    )
    _dismiss_popups(page)
    page.get_by_text("valid_spearman").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "gene_partition.png"), full_page=True)
    assert f"{float(f'{valid:.4g}')}" in page.content()
