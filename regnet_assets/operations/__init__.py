"""The services of the ``regnet`` command: they drive a Dagster instance with regnet's definitions.

Launching runs and backfills (``runner``), the status report (``status``) and what an export
says about the runs and figures (``provenance``). This layer imports ``regnet_assets.defs``;
nothing in ``defs``, ``storage`` or ``science`` imports it.
"""
