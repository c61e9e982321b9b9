"""Calls run a few at a time on threads, their results yielded in order.

`ordered_map` keeps ``at_once`` calls of one function running on threads while the caller
works on the results in the order of the items. TensorFlow runs a traced function without
holding the GIL, so two slice batches through one network overlap: on two CPU cores Inf-Net
spends about 8 % less time on a 300-slice volume with two batches at once, output for output
the same (`tfcovid.predict.Predictor.predict_batches`; ``benchmarks/RESULTS.md``).

Example:

>>> list(ordered_map(lambda value: value * value, range(5), at_once=2))
[0, 1, 4, 9, 16]
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item],
                at_once: int) -> Iterator[Result]:
    """Yields ``function(item)`` for each of ``items``, in their order, computing up to
    ``at_once`` of them at once on threads.

    Items are taken only as calls start, and at most ``at_once`` results are held ahead of
    the one the caller is given. ``at_once`` 1 calls ``function`` in the calling thread, one
    item after the other. An exception raised by a call is raised where its result is due;
    calls not yet started then (or when the caller stops early) never start, and running ones
    are waited for.

    Args:
        function: called with one item.
        items: any iterable, consumed lazily.
        at_once: int >= 1. Calls running at once.

    Raises:
        ValueError: ``at_once`` < 1.
    """
    if at_once < 1:
        raise ValueError(f"at_once must be 1 or more. Received: at_once={at_once}")
    return map(function, items) if at_once == 1 else _threaded(function, items, at_once)


def _threaded(function: Callable[[Item], Result], items: Iterable[Item],
              at_once: int) -> Iterator[Result]:
    with futures.ThreadPoolExecutor(at_once) as pool:
        pending = collections.deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) == at_once:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for call in pending:
                call.cancel()
