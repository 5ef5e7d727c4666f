"""What toy_softmax's tests import besides the framework: its case type and
strategy (cases.py) and its oracle (oracles.py). Importable as ``grading``
while this assignment is graded; never in a student kit."""
