"""Where a chunk's numbers are computed: ``cpu`` (NumPy) or ``gpu`` (CuPy).

Nothing here imports CuPy unless a GPU is asked for, and a missing CuPy or CUDA device is an
error that says which, never a silent fall-back; ``auto`` picks the GPU only when one is usable.
"""

from __future__ import annotations

from ..config.params import DEVICES, choice
from ..errors import PipelineError


def gpu_problem() -> str | None:
    """Why a GPU cannot be used here, or None when CuPy sees a CUDA device."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'pipeline[gpu]')"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver or runtime missing
        return f"no CUDA device is usable ({str(exc).splitlines()[0]})"
    if count < 1:
        return "no CUDA device is visible"
    return None


def resolve_device(device: str) -> str:
    choice("device", device, DEVICES)
    if device == "cpu":
        return "cpu"
    problem = gpu_problem()
    if device == "gpu" and problem:
        raise PipelineError(f"device gpu: {problem}", params=("device",))
    return "cpu" if problem else "gpu"


def to_device(array, device: str):
    if device == "gpu":
        import cupy

        return cupy.asarray(array)
    return array


def to_host(array):
    """A NumPy array of ``array``'s values: CuPy's copy to the host, or a no-copy view."""
    import numpy as np

    get = getattr(array, "get", None)
    if get is not None and not hasattr(array, "__array_interface__"):
        return get()
    return np.asarray(array)
