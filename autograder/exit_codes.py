"""Exit codes of every command (README, "Exit codes"); CI scripts rely on them."""

OK = 0             # done (grade: every submission graded, whatever the scores; check: all passed)
FAILED = 1         # check: a public test failed; validate: an assignment is unsound
GRADER_FAULT = 1   # grade: the grader failed (never a student's doing)
USAGE = 2          # bad arguments, unknown assignment, unreadable configuration
CHECK_COULD_NOT_RUN = 2  # check: the grader could not run the tests
RULE_FAILED = 3    # grade --fail-on: graded, and the chosen rule says the job fails
UNREADABLE = 4     # grade --strict: graded, and a submission could not be read
# When several apply, grade exits with the first of: GRADER_FAULT, UNREADABLE, RULE_FAILED.
