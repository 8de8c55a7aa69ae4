"""Input and output: the storage seam (local disks and fsspec stores), discovery and the
Parquet/CSV readers, the part writer, the committers and their manifest, the one-writer lease.

May import: ``pipeline.errors`` only. Knows nothing of models, kernels or executors.
"""
