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
#   GITHUB_STEP_SUMMARY    set by GitHub Actions: the feedback is appended to it
#   GITHUB_ACTIONS=true    set by GitHub Actions: a "Points X/Y" notice is emitted
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
mkdir -p "$out"
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

autograder grade "$assignment" "$submission" --out "$out" --junit "$out/junit.xml" \
  --fail-on "${AUTOGRADER_FAIL_ON:-never}"
status=$?

id=$(basename "$submission")
report="$out/$id"
if [ ! -f "$report/results.json" ]; then
  echo "grading produced no results.json" >&2
  exit 1
fi
# Stable names for artifact uploads, whatever the folder was called.
cp "$report/results.json" "$report/feedback.md" "$report/feedback.html" "$out/"

points=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("%g/%g" % (r["score"], r["max_score"]))' "$out/results.json")
echo "Points $points"
if [ "${GITHUB_ACTIONS:-}" = "true" ]; then
  echo "::notice title=Autograder::Points $points"
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$out/feedback.md" >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"
