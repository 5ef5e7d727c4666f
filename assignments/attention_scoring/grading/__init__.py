"""What attention_scoring's tests import besides the framework: its case types and
strategies (cases.py) and its oracles (oracles.py). Importable as ``grading``
while this assignment is graded (see autograder/engine/plugin.py); never in a
student kit."""
