"""nbgrader preprocessors the course adds (registered in :mod:`autograder.nbgrader_config`).

- :class:`StderrToStdout` (autograde, validate): a passing test cell that prints a warning to
  stderr keeps its points.
- :class:`HideHiddenTests` (feedback): hidden tests stay hidden in the feedback students get.
- :class:`ClearExecutionMetadata` (release): the release does not depend on how and when the
  solution notebook was last executed.
"""
from __future__ import annotations

from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

__all__ = ["StderrToStdout", "HideHiddenTests", "ClearExecutionMetadata"]


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
