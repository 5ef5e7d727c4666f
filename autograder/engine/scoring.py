"""Test outcomes and the scores made from them.

Points come from ``assignment.yaml`` only; a test either earns all its points or
none. A submission's score is the sum over its tests, computed here in the
grader from its own comparisons, never from anything the worker said.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TestOutcome:
    key: str              # "hidden/test_file.py::test_name", the key of assignment.yaml
    name: str             # what a student reads: "test_name"
    visibility: str       # "public" or "hidden"
    max_score: float
    passed: bool
    feedback: str = ""    # why it failed, hint first; empty when passed
    description: str = ""  # the property the test checks (its docstring)
    mistakes: list[str] = field(default_factory=list)  # cataloged mistakes that explain it
    evidence: dict | None = None  # expected vs actual values to plot (small slices)

    @property
    def score(self) -> float:
        return self.max_score if self.passed else 0.0

    @property
    def id(self) -> str:
        """Unique across public and hidden tests: the key in assignment.yaml
        (``hidden/test_heads.py::test_split``) with the case's parameters (``[5-2]``)."""
        key = self.key or self.name
        base = key.rsplit("::", 1)[-1]
        if self.name == base:
            return key
        if self.name.startswith(base + "["):
            return key + self.name[len(base):]
        return key.rsplit("::", 1)[0] + "::" + self.name if "::" in key else self.name

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"


GRADED, UNREADABLE = "graded", "unreadable"  # grades.csv's status column (cli.md)
# The message engine/plugin.py records for a submission that could not be read.
_UNREADABLE_MESSAGE = "Your submission could not be read:"


@dataclass
class SubmissionResult:
    submission: str
    assignment: str
    tests: list[TestOutcome] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)   # about the whole submission
    execution_time: float = 0.0
    digest: str = ""
    sandbox_layers: list[str] = field(default_factory=list)
    status: str = GRADED  # UNREADABLE when the submission could not be read at all
    # The points of every test that was to run, from assignment.yaml (never
    # from the outcomes that happened to be recorded: a test that did not run
    # must not leave the denominator). 0: not known (an old record).
    configured_max: float = 0.0

    def note_submission(self, sub) -> None:
        """What the grader noted while reading ``sub`` (e.g. that its id was
        changed), for the student; and whether it could be read at all."""
        self.messages.extend(getattr(sub, "notes", ()))
        if sub.source is None:
            self.status = UNREADABLE

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    @property
    def max_score(self) -> float:
        return round(self.configured_max or sum(t.max_score for t in self.tests), 4)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["score"], data["max_score"] = self.score, self.max_score
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SubmissionResult":
        tests = [TestOutcome(**t) for t in data.get("tests", [])]
        fields = {k: data[k] for k in ("submission", "assignment", "messages", "execution_time",
                                       "digest", "sandbox_layers", "status", "configured_max")
                  if k in data}
        if "status" not in fields:  # a record written before the status field existed
            messages = fields.get("messages", ())
            unreadable = any(str(m).startswith(_UNREADABLE_MESSAGE) for m in messages)
            fields["status"] = UNREADABLE if unreadable else GRADED
        return cls(tests=tests, **fields)
