"""What recurrent_cells's gradient tests say and where they ask for gradients.

student-api.md: every function is differentiable, an LSTM's state included.
The framework (autograder.testing.gradients) calls with gradients and compares
them; this module holds the assignment's hint and the wrt paths and names of
its arguments and outputs: a state is h, or the pair (h, c) for lstm, and the
weights are separate arguments or, for bidirectional, a tuple per direction.
"""

from __future__ import annotations

DETACHED_HINT = ("keep every output connected to the inputs in autograd: no .detach(), "
                 ".data, torch.no_grad(), or new tensors rebuilt from .item()/.tolist()/numpy.")
WEIGHTS = ("W_ih", "W_hh", "b_ih", "b_hh")


def state_names(cell: str, name: str, h: str | None = None, c: str | None = None):
    """How feedback names a state: ``name`` for rnn and gru; for lstm's (h, c)
    a pair, nested as the state is (``h``/``c``, by default "name's h")."""
    if cell != "lstm":
        return name
    return (h or f"{name}'s h", c or f"{name}'s c")


def wrt_state(cell: str, position: int, names, given: bool = True) -> tuple[list, list[str]]:
    """(wrt, names) of the state argument at ``position``: h itself, or the h
    and c inside lstm's (h, c); nothing when no state is ``given`` (None means
    zeros, not an input). ``names``: from :func:`state_names`."""
    if not given:
        return [], []
    if cell == "lstm":
        return [(position, 0), (position, 1)], list(names)
    return [position], [names]


def wrt_weights(position: int, bias: bool, inside: bool = False,
                prefix: str = "") -> tuple[list, list[str]]:
    """(wrt, names) of W_ih, W_hh and the biases if any: the arguments from
    ``position`` on, or (``inside``) the entries of the tuple at ``position``."""
    names = WEIGHTS[:4 if bias else 2]
    wrt = [(position, i) if inside else position + i for i in range(len(names))]
    return wrt, [prefix + n for n in names]


def wrt_of(*parts: tuple[list, list[str]]) -> tuple[list, list[str]]:
    """(wrt, names) of several arguments, in order: ``([0], ["x"])``, then
    those of :func:`wrt_state` and :func:`wrt_weights`."""
    return [w for wrt, _ in parts for w in wrt], [n for _, names in parts for n in names]
