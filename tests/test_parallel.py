"""`tfcovid.parallel.ordered_map`: order, calls really at once, lazy items, errors."""

import threading

import pytest
from tfcovid.parallel import ordered_map


class Recorder:
    """Items handed out and calls running, counted under a lock."""

    def __init__(self, count: int):
        self.count, self.taken, self.running, self.most_running = count, 0, 0, 0
        self.threads = set()
        self.lock = threading.Lock()

    def items(self):
        for item in range(self.count):
            with self.lock:
                self.taken += 1
            yield item

    def enter(self):
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.threads.add(threading.get_ident())

    def leave(self):
        with self.lock:
            self.running -= 1


@pytest.mark.parametrize("at_once", [2, 3])
def test_calls_run_at_once_and_results_come_in_order(at_once):
    recorder = Recorder(10)
    # Each call waits until `at_once` calls are inside it: calls made one after the other
    # would break the barrier (after its timeout) instead of passing it.
    barrier = threading.Barrier(at_once, timeout=30)

    def square(item):
        recorder.enter()
        if item < 10 - 10 % at_once:
            barrier.wait()
        recorder.leave()
        return item * item

    assert list(ordered_map(square, recorder.items(), at_once)) == [i * i for i in range(10)]
    assert recorder.most_running == at_once
    assert threading.get_ident() not in recorder.threads


def test_items_are_taken_only_as_calls_start():
    recorder = Recorder(10)
    results = ordered_map(lambda item: item, recorder.items(), 2)
    assert next(results) == 0
    assert recorder.taken == 2  # the first result and one call running behind it
    assert next(results) == 1 and recorder.taken == 3


def test_an_error_is_raised_where_its_result_is_due_and_later_calls_never_start():
    recorder = Recorder(10)
    started = []

    def fail_on_one(item):
        started.append(item)
        if item == 1:
            raise KeyError("item 1")
        return item

    results = ordered_map(fail_on_one, recorder.items(), 2)
    assert next(results) == 0
    with pytest.raises(KeyError, match="item 1"):
        next(results)
    assert recorder.taken <= 3 and max(started) <= 2


def test_one_at_a_time_runs_in_the_calling_thread():
    threads = []
    results = ordered_map(lambda item: threads.append(threading.get_ident()) or -item, range(3),
                          1)
    assert list(results) == [0, -1, -2]
    assert set(threads) == {threading.get_ident()}


def test_at_once_below_one_is_a_value_error():
    with pytest.raises(ValueError, match="at_once=0"):
        ordered_map(abs, [1], 0)
