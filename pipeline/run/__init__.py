"""Orchestration: executors (threads, a local or an existing Dask cluster), chunk tasks
and how one runs and is measured, progress, the synthetic data generator's tasks.

May import: ``pipeline.ops``, ``pipeline.config``, ``pipeline.io``, ``pipeline.errors``.
"""
