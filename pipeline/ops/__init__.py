"""Compute on one block: the kernels (sigmoid, log-sigmoid, derivative), the sigmoid
transform, scoring and evaluation statistics, the design matrix, value and label checks,
column buffers and the device (NumPy or CuPy).

May import: ``pipeline.config``, ``pipeline.io`` (column types), ``pipeline.errors``.
"""
