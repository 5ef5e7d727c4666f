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
    def status(self) -> str:
        return "passed" if self.passed else "failed"


@dataclass
class SubmissionResult:
    submission: str
    assignment: str
    tests: list[TestOutcome] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)   # about the whole submission
    execution_time: float = 0.0
    digest: str = ""
    sandbox_layers: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.tests), 4)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["score"], data["max_score"] = self.score, self.max_score
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SubmissionResult":
        tests = [TestOutcome(**t) for t in data.get("tests", [])]
        fields = {k: data[k] for k in ("submission", "assignment", "messages", "execution_time",
                                       "digest", "sandbox_layers") if k in data}
        return cls(tests=tests, **fields)
