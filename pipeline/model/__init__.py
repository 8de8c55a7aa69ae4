"""The logistic model: per-chunk statistics, the Newton solver, the estimator, its
model file and its dask glue, and the scikit-learn transformer.

May import: ``pipeline.run``, ``pipeline.ops``, ``pipeline.config``, ``pipeline.io``,
``pipeline.errors``.
"""
