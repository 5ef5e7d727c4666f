"""The ``autograder`` command of a student kit (``pip install .`` in the unzipped
folder; see kits.py).

Installed that way, the package lives in site-packages, away from the kit's
``assignments/`` folder that :func:`autograder.assignment.course_root` looks
for beside it. So, unless ``AUTOGRADER_COURSE`` says where the course is, the
folder the student runs the command in (or the nearest folder above it) that
holds ``assignments/`` is the course.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def find_course(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "assignments").is_dir():
            return folder
    return None


def run() -> None:
    from .. import assignment, cli

    if "AUTOGRADER_COURSE" not in os.environ and \
            not (assignment.course_root() / "assignments").is_dir():
        course = find_course(Path.cwd())
        if course is not None:
            os.environ["AUTOGRADER_COURSE"] = str(course)
        elif "check" in sys.argv[1:2]:
            print("autograder: no assignments/ folder here or above: run this command in "
                  "the unzipped kit's folder (see its CHECK.md)", file=sys.stderr)
    cli.run()
