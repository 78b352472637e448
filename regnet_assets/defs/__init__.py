"""The orchestration layer: assets, checks, partitions, resources, IO managers, sensors.

Asset bodies read inputs, call the science in ``regnet_assets.science`` and attach metadata;
no numerical code lives here (DESIGN §1).
"""
