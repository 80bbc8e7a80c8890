"""nbgrader configuration of the CNN Lab course (course id ``cnnlab``).

Plain nbgrader commands read this file when run from this folder::

    cd autograder
    nbgrader generate_assignment 01_convolution --force   # solutions/ -> assignments/
    nbgrader autograde 01_convolution
    nbgrader generate_feedback 01_convolution
    nbgrader export --to exports/grades.csv

(``python3 run.py grade ...`` from the repository root wraps exactly these commands.)
Directories and the gradebook URL come from :mod:`autograder.course`; set
``CNNLAB_GRADEBOOK_URL`` (or pass ``--CourseDirectory.db_url=...``) to use another database.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearOutput,
    ClearSolutions, ComputeChecksums, Execute, GetGrades, IgnorePattern, IncludeHeaderFooter,
    InstantiateTests, LimitOutput, LockCells, SaveAutoGrades, SaveCells)

from autograder.course import COURSE_ID, DIRECTORIES, db_url  # noqa: E402
from autograder.preprocessors import (  # noqa: E402
    SECURE_RESULTS_ENV, ClearExecutionMetadata, HideHiddenTests, InjectSecureResults, StderrToStdout)

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = COURSE_ID
c.CourseDirectory.root = _ROOT
for _name, _path in DIRECTORIES.items():
    setattr(c.CourseDirectory, _name, _path)
c.CourseDirectory.db_url = db_url(_ROOT)

# nbgrader's release pipeline, plus: no execution timestamps of the solution notebooks in the release.
c.GenerateAssignment.preprocessors = [
    IncludeHeaderFooter,
    InstantiateTests,
    LockCells,
    ClearSolutions,
    ClearOutput,
    ClearExecutionMetadata,
    CheckCellMetadata,
    ComputeChecksums,
    SaveCells,
    ClearHiddenTests,
    ClearMarkScheme,
    ComputeChecksums,
    CheckCellMetadata,
]

# Test cells are seeded and fast; a cell running longer than this is a student's infinite loop.
c.Execute.timeout = 60

# A warning printed to stderr (torch, numpy, warnings.warn) must not zero a passing test cell:
# nbgrader counts any stderr output of a grade cell as a failure, so relabel it as stdout just
# before the scores are saved. Errors (exceptions, failed asserts) still score zero.
#
# `python3 run.py grade autograde` grades with the hardened grader first and then runs nbgrader's
# autograde with its results in place of execution (InjectSecureResults): nbgrader's gradebook,
# late penalties and feedback work as usual, and no student code runs in nbgrader's kernel.
c.Autograde.autograde_preprocessors = [
    InjectSecureResults if os.environ.get(SECURE_RESULTS_ENV) else Execute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    StderrToStdout,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Feedback shows that a hidden test failed (exception type and message) but neither the
# hidden test's source nor its traceback.
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]
