"""Grading on this machine: in this process, or in ``--jobs N`` forked grader
processes, each kept to its share of the CPUs.

Every executor (this one, :mod:`.dask`) implements :class:`.Executor`: grade a
list of submissions, hand each finished result to ``on_result`` and return the
grader errors. Reports are not an executor's business (see report/writer.py).
"""

from __future__ import annotations

import json
import os
import selectors
import sys

from ..engine.plugin import run_pytest
from ..engine.scoring import SubmissionResult
from ..sandbox.zygote import Zygote

# Submissions per pytest session: hypothesis and collection are paid once per
# chunk; results are written when a chunk ends, so an interrupted batch loses
# at most one chunk's work.
CHUNK = 8


class LocalExecutor:
    """``jobs`` grader processes on this machine, with workers from ``launcher``
    (this process's zygote, see :func:`..sandbox.zygote.shared_launcher`)."""

    def __init__(self, launcher, jobs: int = 1, progress=lambda sid: None):
        self.launcher, self.jobs, self.progress = launcher, max(1, jobs), progress

    def grade(self, assignment, subs, on_result, include_hidden: bool) -> list[str]:
        jobs = min(self.jobs, len(subs))
        if jobs <= 1:
            def report(result: SubmissionResult) -> None:
                on_result(result)
                self.progress(result.submission)
            return grade_in_process(assignment, subs, report, include_hidden, None,
                                    self.launcher)
        return _grade_parallel(assignment, subs, on_result, include_hidden, jobs,
                               self.progress, self.launcher)


def grade_in_process(assignment, subs, on_result, include_hidden, threads, launcher) -> list[str]:
    """Grade ``subs`` in this process, chunk by chunk, with workers from
    ``launcher``."""
    if threads:
        import torch
        torch.set_num_threads(threads)
    errors = []
    chunk = int(os.environ.get("AUTOGRADER_CHUNK", CHUNK))
    for start in range(0, len(subs), chunk):
        plugin = run_pytest(assignment, subs[start:start + chunk], launcher, on_result,
                            include_hidden)
        errors += plugin.errors
    return errors


def _keep_to_cpu_share(index: int, jobs: int, zygote_pid: int | None = None) -> None:
    """Keep grader process ``index`` (and the zygote and workers it starts) on
    its own share of the CPUs: measured 7% more throughput at --jobs 2 on 2
    cores, as each process's workers find its memory in that core's caches."""
    if not hasattr(os, "sched_setaffinity"):
        return  # macOS: the scheduler decides
    cpus = sorted(os.sched_getaffinity(0))
    if jobs > len(cpus):
        return  # more processes than CPUs: only the scheduler can balance them
    for pid in (0, zygote_pid) if zygote_pid else (0,):
        try:
            os.sched_setaffinity(pid, cpus[index::jobs])
        except OSError:
            pass


def _grade_parallel(assignment, subs, on_result, include_hidden, jobs, progress,
                    launcher) -> list[str]:
    """Fork ``jobs`` grader processes, each grading every jobs-th submission.
    Each reports finished submissions (for the progress bar) and, last, its
    errors, as JSON lines on a pipe.

    This process has read the whole batch by now, and so does every process
    forked from it: each grader process gets a zygote cloned from this
    process's clean one (started before anything was read), never one
    forked from itself, so no worker can find a classmate's code in memory."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pipes = {}
    for index in range(jobs):
        share = subs[index::jobs]
        # Workers started by fresh interpreters (SpawnLauncher) inherit nothing.
        own = launcher.clone() if isinstance(launcher, Zygote) else type(launcher)()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 0
            _keep_to_cpu_share(index, jobs, own.pid if isinstance(own, Zygote) else None)

            def report(result: SubmissionResult) -> None:
                on_result(result)
                os.write(write_end, (json.dumps({"done": result.submission}) + "\n").encode())
            try:
                errors = grade_in_process(assignment, share, report, include_hidden, threads, own)
            except BaseException as exc:  # reported by the parent, never lost
                errors, code = [f"grader process failed: {exc!r}"], 1
            os.write(write_end, (json.dumps({"errors": errors}) + "\n").encode())
            sys.stdout.flush()
            os._exit(code)
        os.close(write_end)
        if isinstance(own, Zygote):
            own.control.close()  # the child's now: only its copy stays open
        pipes[os.fdopen(read_end, "rb")] = pid
    errors = []
    selector = selectors.DefaultSelector()
    for pipe in pipes:
        selector.register(pipe, selectors.EVENT_READ)
    finished = set()
    while len(finished) < len(pipes):
        for key, _ in selector.select():
            line = key.fileobj.readline()
            if not line:
                selector.unregister(key.fileobj)
                finished.add(key.fileobj)
                continue
            try:
                message = json.loads(line)
            except ValueError:
                errors.append("a grader process sent an unreadable report")
                continue
            if "done" in message:
                progress(message["done"])
            errors += message.get("errors", [])
    for pipe, pid in pipes.items():
        pipe.close()
        _, status = os.waitpid(pid, 0)
        if status != 0:
            errors.append(f"a grader process ended with wait status {status}")
    return errors
