"""CNN Lab's grading: nbgrader configuration and the instructor workflow.

- :mod:`autograder.course`         course root, directories, gradebook URL
- :mod:`autograder.grade`          release / collect / autograde / feedback / export / validate
- :mod:`autograder.preprocessors`  nbgrader preprocessors the course adds
- ``autograder/nbgrader_config.py`` the configuration plain ``nbgrader`` commands read

Command line: ``python3 run.py grade COMMAND`` (see ``python3 run.py grade --help``).
"""
from . import course, grade

__all__ = ["course", "grade", "preprocessors"]
