"""The science layer: plain functions on arrays, DataFrames and MuData.

Nothing under this package imports dagster (DESIGN §1), so every piece can be reused from a
notebook without the orchestrator installed.
"""
