"""Whole batches: killed part-way and resumed, split between CPUs, and graded on a
Dask cluster."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import EXAMPLES, ROOT

REFERENCE = ROOT / "reference" / "multihead_attention.py"
TEMPLATE = ROOT / "student_templates" / "multihead_attention.py"


def submissions(folder, count):
    folder.mkdir()
    paths = []
    for i in range(count):
        source = [REFERENCE, TEMPLATE, EXAMPLES / "no_sqrt_scaling.py"][i % 3]
        path = folder / f"student{i:02d}.py"
        shutil.copy(source, path)
        paths.append(path)
    return paths


def test_killed_batch_resumes_where_it_stopped(tmp_path):
    """Kill -9 after the first chunk is written: every file on disk is whole,
    and --resume grades only what is missing, to the same grades as one run."""
    paths = submissions(tmp_path / "subs", 6)
    out = tmp_path / "out"
    env = dict(os.environ, AUTOGRADER_CHUNK="2")
    command = [sys.executable, "-m", "autograder", "grade", "multihead_attention",
               *map(str, paths), "--out", str(out)]
    batch = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(list(out.glob("*/grading.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(batch.pid, signal.SIGKILL)
    batch.wait()
    done = {p.parent.name for p in out.glob("*/grading.json")}
    assert 2 <= len(done) < 6
    for path in out.glob("*/*.json"):
        json.loads(path.read_text())  # whole, never half-written

    resumed = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(done)} unchanged submission(s) kept" in resumed.stderr  # messages: stderr
    grades = (out / "grades.csv").read_text().splitlines()
    assert len(grades) == 7
    scores = {line.split(",")[0]: float(line.split(",")[1]) for line in grades[1:]}
    # The same source gets the same grade, whether kept or graded after the resume.
    assert [scores[f"student{i:02d}"] for i in range(3)] == \
        [scores[f"student{i:02d}"] for i in range(3, 6)]
    assert scores["student00"] == 100 and scores["student01"] == 0
    assert 0 < scores["student02"] < 100
    assert not list(out.glob("**/.*.tmp"))


def test_changed_submission_is_regraded_on_resume(tmp_path):
    paths = submissions(tmp_path / "subs", 1)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "autograder", "grade", "multihead_attention",
               str(paths[0]), "--out", str(out), "--resume"]
    assert subprocess.run(command, capture_output=True).returncode == 0
    shutil.copy(TEMPLATE, paths[0])
    again = subprocess.run(command, capture_output=True, text=True)
    assert "unchanged" not in again.stdout + again.stderr
    assert (out / "grades.csv").read_text().splitlines()[1].startswith("student00,0,")


def test_dask_executor_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    from autograder.executors.dask import DaskExecutor
    from autograder.grade import grade

    paths = submissions(tmp_path / "subs", 3)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        outcome = grade("multihead_attention", [str(p) for p in paths], tmp_path / "out",
                        executor=DaskExecutor(client=client, chunk=2))
    assert not outcome.errors
    scores = {r.submission: r.score for r in outcome.results}
    assert scores["student00"] == 100 and scores["student01"] == 0
    # The wrong submission gets on the cluster what it gets locally.
    local = grade("multihead_attention", [str(paths[2])], tmp_path / "local")
    assert scores["student02"] == local.results[0].score and 0 < scores["student02"] < 100
    assert (tmp_path / "out" / "student02" / "feedback.html").is_file()


def _affinity_after_share(index, jobs):
    """The CPUs a forked grader process keeps after taking its share."""
    from autograder.executors.local import _keep_to_cpu_share

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        _keep_to_cpu_share(index, jobs)
        os.write(write_end, json.dumps(sorted(os.sched_getaffinity(0))).encode())
        os._exit(0)
    os.close(write_end)
    data = os.read(read_end, 65536)
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs and sched_setaffinity")
def test_parallel_graders_each_keep_to_their_share_of_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    shares = [_affinity_after_share(i, 2) for i in range(2)]
    assert shares == [cpus[0::2], cpus[1::2]]
    # more grader processes than CPUs: the scheduler balances them, none is pinned
    assert _affinity_after_share(0, len(cpus) + 1) == cpus
