"""nbgrader preprocessors the course adds (registered in :mod:`autograder.nbgrader_config`).

- :class:`StderrToStdout` (autograde, validate): a passing test cell that prints a warning to
  stderr keeps its points.
- :class:`HideHiddenTests` (feedback): hidden tests stay hidden in the feedback students get.
- :class:`ClearExecutionMetadata` (release): the release does not depend on how and when the
  solution notebook was last executed.
- :class:`InjectSecureResults` (autograde, in place of nbgrader's ``Execute``): the outputs of the
  hardened grader (:mod:`autograder.secure`) become the cells' outputs, so nbgrader's own
  ``SaveAutoGrades`` records exactly the hardened scores and feedback shows them.
"""
from __future__ import annotations

import json
import os

from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

__all__ = ["StderrToStdout", "HideHiddenTests", "ClearExecutionMetadata", "InjectSecureResults",
           "SECURE_RESULTS_ENV"]

#: Environment variable naming the hardened grader's ``results.json`` for ``nbgrader autograde``.
SECURE_RESULTS_ENV = "CNNLAB_SECURE_RESULTS"


class StderrToStdout(NbGraderPreprocessor):
    """Relabel ``stderr`` stream outputs of grade cells as ``stdout``.

    ``nbgrader.utils.determine_grade`` gives zero points to a grade cell with *any* stderr
    output, so a correct answer whose test cell triggers e.g. a torch ``UserWarning`` would
    score zero. The text is kept (students still see the warning); only the stream name
    changes. Error outputs (exceptions, failed assertions) are untouched and still score zero.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
        return cell, resources


class HideHiddenTests(NbGraderPreprocessor):
    """Remove hidden tests from feedback and reduce their tracebacks to one line.

    In every code cell containing a ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``
    region, the region is replaced by a comment, and an error output of that cell keeps only
    ``ExceptionType: message`` (an IPython traceback would quote the hidden source). Students
    see *that* a hidden test failed and its message, never its code.
    """

    begin = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end = Unicode("END HIDDEN TESTS").tag(config=True)
    placeholder = Unicode("# (hidden tests: not shown)").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code" or self.begin not in cell.source:
            return cell, resources
        lines, inside = [], False
        for line in cell.source.split("\n"):
            if self.begin in line:
                inside = True
                indent = line[: len(line) - len(line.lstrip())]
                lines.append(indent + self.placeholder)
            elif self.end in line:
                inside = False
            elif not inside:
                lines.append(line)
        cell.source = "\n".join(lines)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [
                    f"{output.get('ename', 'Error')}: {output.get('evalue', '')}",
                    "(this cell contains hidden tests; their source and traceback are not shown)",
                ]
        return cell, resources


class ClearExecutionMetadata(NbGraderPreprocessor):
    """Drop volatile cell metadata (``execution`` timestamps, ``collapsed``, ``scrolled``)."""

    keys = ("execution", "collapsed", "scrolled", "ExecuteTime")

    def preprocess_cell(self, cell, resources, cell_index):
        for key in self.keys:
            cell.metadata.pop(key, None)
        return cell, resources


class InjectSecureResults(NbGraderPreprocessor):
    """Give every code cell the output the hardened grader recorded instead of executing it.

    Reads ``results.json`` of :func:`autograder.secure.grade_batch` (path in
    ``$CNNLAB_SECURE_RESULTS``). For each cell with a ``grade_id`` the hardened run's entry is
    looked up: what it printed becomes a ``stdout`` stream, an error becomes an ``error`` output
    (``ExceptionType: message``, no traceback), so ``SaveAutoGrades`` gives a test cell its
    points exactly when it passed in the trusted process. A student without a hardened result
    (never graded) gets an error in every graded cell: nothing is ever scored unexecuted.
    """

    results_path = Unicode("", help="results.json of the hardened grader").tag(config=True)

    def _results(self):
        path = self.results_path or os.environ.get(SECURE_RESULTS_ENV, "")
        if not path or not os.path.isfile(path):
            return {}
        with open(path) as fh:
            return json.load(fh)

    def preprocess(self, nb, resources):
        meta = resources.get("nbgrader", {})
        student, notebook = meta.get("student"), meta.get("notebook")
        res = self._results().get(student, {}).get("notebooks", {}).get(f"{notebook}.ipynb")
        entries = {c["id"]: c for c in (res or {}).get("cells", [])}
        missing = "not graded by the hardened grader: " + "; ".join((res or {}).get("messages", [])[:3])
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            entry = entries.get(gid)
            cell.outputs = []
            cell.execution_count = None
            if entry is None:
                if utils.is_grade(cell):
                    cell.outputs.append(new_output("error", ename="NotGraded", evalue=missing[:500],
                                                   traceback=[f"NotGraded: {missing[:500]}"]))
                continue
            if entry.get("output"):
                cell.outputs.append(new_output("stream", name="stdout", text=entry["output"]))
            if entry.get("error"):
                ename, _, evalue = str(entry["error"]).partition(": ")
                cell.outputs.append(new_output("error", ename=ename, evalue=evalue, traceback=[entry["error"]]))
        return nb, resources
