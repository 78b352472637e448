"""Temporary: ``latest_runs`` lives in ``regnet_assets.defs.instance``.

Only ``defs/assets/reports.py`` still imports it from here; delete this module together with
that import's switch to ``from regnet_assets.defs.instance import latest_runs``.
"""

from regnet_assets.defs.instance import latest_runs

__all__ = ["latest_runs"]
