"""Hardened autograding: student code never runs where points are awarded.

- :mod:`.notebook` submission + instructor source notebook -> grading plan (tampering, malformed input)
- :mod:`.sandbox`  the student's process: limits, fresh directory, namespaces, pids cgroup
- :mod:`.agent`    the untrusted side (runs student cells; self-contained)
- :mod:`.wire`     the trusted side of the pipe: strict decoding, proxies for student objects
- :mod:`.runner`   the trusted runner of one submission (instructor tests run here)
- :mod:`.batch`    parallel batches (one job function: bytes in, JSON text out), checkout hash,
                   reports, grades CSV, gradebook
- :mod:`.cluster`  the same jobs on a Dask distributed cluster (``--scheduler``)

See autograder/README.md (threat model). Command line: ``python3 run.py grade secure ASSIGNMENT``.
"""
__all__ = ["grade_batch", "grade_one", "Limits", "probe"]


def __getattr__(name):  # lazy: the runner process must not pay for nbformat's import
    if name in ("grade_batch", "grade_one"):
        from . import batch
        return getattr(batch, name)
    if name in ("Limits", "probe"):
        from . import sandbox
        return getattr(sandbox, name)
    raise AttributeError(name)
