"""CPU time of the student's code: what the open challenge's budget is measured in.

In a notebook (and under plain nbgrader) the student's code runs in this very process, so
:func:`student_cpu_seconds` is this process's user + system CPU time (all threads, and the
children it waited for). Under the hardened grader the student's code runs in another process;
the grader's trusted runner installs a meter (:func:`use_meter`) that reads that process's CPU
time from ``/proc`` (and its cgroup), where student code cannot change it. CPU seconds, not
wall-clock seconds: a second thread does not buy more budget, and a busy machine does not take
any away (a slower CPU does: budgets leave a wide margin).
"""
from __future__ import annotations

import os
import time

__all__ = ["student_cpu_seconds", "cpu_seconds_of", "use_meter"]

_meter = None


def use_meter(meter) -> None:
    """Measure the student's CPU time with ``meter() -> float`` (seconds); ``None`` restores the default."""
    global _meter
    if meter is not None and not callable(meter):
        raise TypeError(f"meter must be callable or None, got {type(meter).__name__}")
    _meter = meter


def student_cpu_seconds() -> float:
    """CPU seconds (user + system) the student's code has used so far, a float."""
    if _meter is not None:
        return float(_meter())
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_seconds_of(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)``; return ``(its result, CPU seconds it used, wall seconds)``."""
    cpu0, wall0 = student_cpu_seconds(), time.perf_counter()
    result = fn(*args, **kwargs)
    return result, student_cpu_seconds() - cpu0, time.perf_counter() - wall0
