#!/usr/bin/env bash
# Grade one submission folder (a student's repository) and report the points.
# Any CI or cron job can call it:   ci/grade.sh SUBMISSION_DIR OUT_DIR
#
# Environment (all optional):
#   AUTOGRADER_ASSIGNMENT  assignment id; default: the one whose module file
#                          (e.g. multihead_attention.py) is in SUBMISSION_DIR
#   AUTOGRADER_COURSE      course kit holding assignments/ (with hidden tests);
#                          default: the kit autograder was installed from
#   AUTOGRADER_FAIL_ON     never (default: the job is green whatever the score),
#                          public (red when a public test fails) or any
#   GITHUB_ACTIONS=true    set by GitHub Actions: a "Points X/Y" notice and an
#                          error annotation per failed test (name and points)
#   GITHUB_STEP_SUMMARY    set by GitHub Actions: the feedback is appended to it
#   GITHUB_OUTPUT          set by GitHub Actions: the step's outputs points
#                          (X/Y), score, max_score and failed (a count)
#
# Writes OUT_DIR/results.json, feedback.md, feedback.html, junit.xml and
# grades.csv. Exit code: 0 graded; 3 graded but AUTOGRADER_FAIL_ON says fail;
# 1 grader fault; 2 usage error (see README, "Exit codes").
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 SUBMISSION_DIR OUT_DIR" >&2
  exit 2
fi
submission=$(cd "$1" && pwd) || exit 2
out=$2
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)

assignment=${AUTOGRADER_ASSIGNMENT:-}
if [ -z "$assignment" ]; then
  for id in $(autograder list --ids); do
    if [ -f "$submission/$id.py" ] || [ -f "$submission/$id.ipynb" ]; then
      assignment=$id
    fi
  done
fi
if [ -z "$assignment" ]; then
  echo "no assignment file found in $submission (expected one of: $(autograder list --ids | tr '\n' ' '))" >&2
  exit 2
fi

# --quiet: the paths autograder would print are those of this runner's disk;
# where the report ends up is said below.
autograder grade "$assignment" "$submission" --out "$out" --junit "$out/junit.xml" \
  --fail-on "${AUTOGRADER_FAIL_ON:-never}" --quiet
status=$?
if [ "$status" -eq 2 ]; then
  exit 2  # a usage error: autograder said why, on stderr
fi

id=$(basename "$submission")
report="$out/$id"
if [ ! -f "$report/results.json" ]; then
  echo "grading produced no results.json" >&2
  exit 1
fi
# Stable names for artifact uploads, whatever the folder was called.
cp "$report/results.json" "$report/feedback.md" "$report/feedback.html" "$out/"

# The points line, GitHub's annotations and step outputs, from results.json.
module=""
for name in "$assignment.py" "$assignment.ipynb"; do
  if [ -f "$submission/$name" ]; then module=$name; fi
done
python3 - "$out/results.json" "$module" <<'PY'
import json
import os
import sys

results = json.load(open(sys.argv[1], encoding="utf-8"))
module = sys.argv[2]
github = os.environ.get("GITHUB_ACTIONS") == "true"
MAX_ERRORS = 10  # GitHub shows at most 10 error annotations of a step


def points(value):
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def data(text):  # a workflow command's message
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def prop(text):  # a workflow command's property (title=..., file=...)
    return data(text).replace(":", "%3A").replace(",", "%2C")


score = f"{points(results['score'])}/{points(results['max_score'])}"
failed = [t for t in results.get("tests", []) if t.get("status") != "passed"]
print(f"Points {score}")
if github:
    print(f"::notice title=Autograder::Points {score}")
    where = f"file={prop(module)}," if module else ""
    outputs = {(t.get("output") or "").strip() for t in failed}
    if failed and len(failed) == len(results.get("tests", [])) and len(outputs) == 1:
        # Nothing could run (an unreadable file, a syntax error): one reason.
        message = outputs.pop() or "every test failed"
        print(f"::error {where}title={prop(f'All {len(failed)} tests failed (0/' + points(results['max_score']) + ' points)')}::{data(message)}")
    else:
        for test in failed[:MAX_ERRORS]:
            kind = "public" if test.get("visibility") == "visible" else "hidden"
            title = f"{test['name']} ({kind} test): 0/{points(test['max_score'])} points"
            lines = [line for line in (test.get("output") or "failed").splitlines()
                     if line.strip() and not line.startswith("Checks:")] or ["failed"]
            message = "\n".join(lines[:4]) + ("\n..." if len(lines) > 4 else "")
            print(f"::error {where}title={prop(title)}::{data(message)}")
        if len(failed) > MAX_ERRORS:
            print(f"::warning title=Autograder::{len(failed) - MAX_ERRORS} more failed tests: "
                  "see the job summary")
if os.environ.get("GITHUB_OUTPUT"):
    with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as handle:
        handle.write(f"points={score}\nscore={points(results['score'])}\n"
                     f"max_score={points(results['max_score'])}\nfailed={len(failed)}\n")
PY

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$out/feedback.md" >> "$GITHUB_STEP_SUMMARY"
fi
if [ "${GITHUB_ACTIONS:-}" = "true" ] || [ "${GITLAB_CI:-}" = "true" ]; then
  echo "Report: feedback.html, feedback.md, results.json and junit.xml in this job's artifacts" >&2
else
  echo "Report: $out/feedback.html (and feedback.md, results.json, junit.xml)" >&2
fi
exit "$status"
