"""Grading on an existing dask.distributed cluster (``grade --executor dask``).

The client sends chunks of submissions (their source text, not paths) to the
cluster; each task runs ``python -m autograder grade`` in a fresh process on
its worker and returns the finished records, which the client writes as usual.
A fresh process per task keeps tasks apart (a long-lived dask worker would
otherwise carry one task's caches and state into the next) and costs one
``import torch`` per chunk.

Workers need this package and the course kit: by default the client's course
path is used (a shared file system, or the same path on every machine);
otherwise set ``AUTOGRADER_COURSE`` on the workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..assignment import course_root
from ..engine.scoring import SubmissionResult

CHUNK = 8


def grade_chunk(assignment_id: str, module: str, items: list[tuple[str, str]],
                include_hidden: bool, course: str | None) -> tuple[list[dict], list[str]]:
    """Runs on a dask worker: grade ``items`` ((id, source) pairs)."""
    with tempfile.TemporaryDirectory(prefix="autograder-dask-") as tmp:
        folders = []
        for sid, source in items:
            folder = Path(tmp) / "submissions" / sid
            folder.mkdir(parents=True)
            (folder / module).write_text(source)
            folders.append(str(folder))
        command = [sys.executable, "-m", "autograder", "grade", assignment_id, *folders,
                   "--out", str(Path(tmp) / "out"), "--quiet"]  # its paths vanish with tmp
        if not include_hidden:
            command.append("--public-only")
        env = dict(os.environ, **({"AUTOGRADER_COURSE": course} if course and not
                                  os.environ.get("AUTOGRADER_COURSE") else {}))
        env["CI"] = "1"  # no progress bar in a worker's log
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        records, errors = [], []
        for sid, _ in items:
            try:
                records.append(json.loads((Path(tmp) / "out" / sid / "grading.json").read_text()))
            except (OSError, ValueError):
                errors.append(f"{sid}: the dask worker wrote no result "
                              f"(exit {done.returncode}: {done.stderr.strip()[-500:]})")
        return records, errors


class DaskExecutor:
    def __init__(self, scheduler: str | None = None, client=None, chunk: int = CHUNK):
        if scheduler is None and client is None:
            raise ValueError("--executor dask needs --scheduler ADDRESS")
        self.scheduler, self.client, self.chunk = scheduler, client, chunk

    def grade(self, assignment, subs, on_result, include_hidden: bool) -> list[str]:
        from distributed import Client, as_completed

        client = self.client or Client(self.scheduler)
        errors = []
        readable = [s for s in subs if s.source is not None]
        unreadable = [s for s in subs if s.source is None]
        if unreadable:  # nothing runs for them: graded here, where their problem is known
            from ..sandbox.launcher import NoWorkers
            from .local import grade_in_process
            errors += grade_in_process(assignment, unreadable, on_result, include_hidden, None,
                                   NoWorkers())
        futures = [client.submit(grade_chunk, assignment.id, assignment.module,
                                 [(s.id, s.source) for s in readable[i:i + self.chunk]],
                                 include_hidden, str(course_root()), pure=False)
                   for i in range(0, len(readable), self.chunk)]
        try:
            for future in as_completed(futures):
                records, chunk_errors = future.result()
                errors += chunk_errors
                for record in records:
                    on_result(SubmissionResult.from_dict(record))
        finally:
            if self.client is None:
                client.close()
        return errors
