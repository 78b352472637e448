"""Shared fixtures: a throw-away Dagster instance, storage folder and small simulated data."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import dagster as dg
import pytest

from regnet_assets.defs.definitions import ALL_ASSETS, make_resources
from regnet_assets.defs.resources import DatasetResource

# Tests are grouped by layer; those that materialize assets or drive processes are `slow`, so
# `pytest -m "not slow"` runs the science and storage tests in about a minute.
SLOW_LAYERS = {"assets", "operations"}
SERVICE_MARKS = {"test_postgres.py": "postgres", "test_browser.py": "browser"}
# Under xdist (`--dist loadgroup`) each module is one group, so its module fixtures are built
# once; the modules that drive many processes of their own share one group and run one after
# another: side by side on 2 cores they starve each other past the timeout.
PROCESS_HEAVY = {"test_browser.py", "test_postgres.py", "test_concurrency.py", "test_crash_kill.py"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the groups into node ids
def pytest_collection_modifyitems(items):
    for item in items:
        path = Path(item.fspath)
        item.add_marker(
            pytest.mark.xdist_group(
                "processes" if path.name in PROCESS_HEAVY else f"{path.parent.name}.{path.stem}"
            )
        )
        if path.parent.name in SLOW_LAYERS:
            item.add_marker(pytest.mark.slow)
        if path.name in SERVICE_MARKS:
            item.add_marker(getattr(pytest.mark, SERVICE_MARKS[path.name]))


@pytest.fixture(autouse=True)
def _default_sigterm():
    """Each test starts with SIGTERM's default action. Something a test runs in-process (measured
    after the browser module) leaves SIGTERM ignored in the xdist worker; children inherit an
    ignored signal, so a later test's ``multiprocessing.Pool`` could never terminate its workers
    and hung in ``Pool.__exit__``."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def materialize(
    selection, storage: Path, instance, dataset: DatasetResource | None = None, device: str = "cpu", **kwargs
) -> dg.ExecuteInProcessResult:
    """Materialize ``selection`` of the real graph with test resources (errors returned)."""
    return dg.materialize(
        ALL_ASSETS,
        selection=selection,
        instance=instance,
        raise_on_error=False,
        resources=make_resources(str(storage), dataset or DatasetResource(preset="small"), device),
        **kwargs,
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Every result file under ``root`` with its content hash (run history excluded)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "dagster_home" not in p.parts
    }
