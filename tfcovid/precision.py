"""Keras dtype policies ("precisions") for training and prediction.

"float32" computes in float32; "mixed_float16" and "mixed_bfloat16" compute in 16 bits with
float32 weights (Keras mixed precision). Layers built with an explicit ``dtype="float32"`` (the
output resizes of the segmentation networks) stay in float32 under either.

Example::

    with precision_policy("mixed_bfloat16"):
        network = tfcovid.models.build("infnet", InfNetConfig())   # bf16 compute
"""

from __future__ import annotations

import contextlib

import keras

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def precision_policy(policy: str):
    """Context manager: the global dtype policy, restored afterwards.

    Raises:
        ValueError: ``policy`` not in ``PRECISIONS``.
    """
    if policy not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}. Received: "
                         f"precision={policy!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
