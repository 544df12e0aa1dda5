"""How many BLAS threads: one, except for the one large factorization that gains.

lmer keeps BLAS single-threaded (:func:`blas_single_thread`): its matrices are
small to medium, where multi-threaded OpenBLAS gains little and can be many
times slower when the cores are busy (its threads spin while they wait for a
core).  The exception is the dense Schur complement of a large crossed model
(order ~3,700 for 6,040 x 3,706 levels), factored at every evaluation: on an
idle 2-core machine two threads take it from 0.52 s to 0.30 s, with another
process running they took 1.5-3.5 s.  :class:`ThreadChooser` therefore times
both and keeps the faster, re-trying the other from time to time.  The two
give the same factor up to round-off (~1e-16 relative), so the θ of such a model,
found by finite differences to ~1e-7 (optimize.quasi_newton_logs), can differ at
~1e-8 between two runs that chose differently.
"""

import contextlib
import os
import time

_CONTROLLER = []


def _controller():
    """threadpoolctl's controller (the library scan is done once per process), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def blas_single_thread():
    """Limit BLAS to one thread (a context manager), when threadpoolctl is installed."""
    ctl = _controller()
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ThreadChooser:
    """Runs a repeated BLAS-heavy call with 1 thread or with every core, whichever
    was faster when last timed.

    The first call runs on one thread, the second on all cores; then the faster
    of the two most recent times wins.  The arm in use is re-timed at every call,
    so a load that appears is seen at once; the other is tried again every
    ``retry`` calls.
    """

    def __init__(self, retry=12):
        self.cores = _cores()
        self.retry = retry
        self.last = {}          # threads -> seconds of the latest timed call
        self.calls = 0

    def _pick(self):
        many = self.cores
        if many < 2 or _controller() is None:
            return 1
        for arm in (1, many):
            if arm not in self.last:
                return arm
        best = min(self.last, key=self.last.get)
        other = many if best == 1 else 1
        return other if self.calls % self.retry == 0 else best

    def __call__(self, fn, *args):
        self.calls += 1
        arm = self._pick()
        with contextlib.ExitStack() as stack:
            if arm > 1:
                stack.enter_context(_controller().limit(limits=arm, user_api="blas"))
            start = time.perf_counter()
            out = fn(*args)
            self.last[arm] = time.perf_counter() - start
        return out
