"""Hidden tests of clip_grad_norm against torch.nn.utils.clip_grad_norm_."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, float_dtypes, generator, random_tensor, seeds, unpack
from grading.oracles import clip_grad_norm

shapes = st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=5)


def make(shapes, dtype, seed):
    gen = generator(seed)
    return [random_tensor(tuple(s), dtype, gen) for s in shapes]


def check(student, grads, max_norm, where, hint):
    clipped, total = unpack(student.clip_grad_norm(grads, max_norm), 2, "clip_grad_norm",
                            "clipped_list, total_norm")
    expected, expected_total = clip_grad_norm(grads, max_norm)
    assert_close(total, expected_total, what="total_norm", case=where,
                 hint="total_norm is ONE number: the L2 norm of all gradients together, "
                      "sqrt(sum of the squared norms), returned as a 0-dim tensor.")
    clipped = unpack(clipped, len(grads), "the clipped list")
    for i, (a, e) in enumerate(zip(clipped, expected)):
        assert_close(a, e, what=f"clipped[{i}]", case=where, hint=hint)


@given(shapes=shapes, dtype=float_dtypes(), seed=seeds(),
       ratio=st.sampled_from([0.1, 0.5, 0.9, 1.0]))
def test_clip_grad_norm_matches_torch(student, shapes, dtype, seed, ratio):
    """Above (and exactly at) the threshold, every tensor is scaled by the same
    factor max_norm / (total_norm + eps), computed from the global norm of all
    tensors."""
    grads = make(shapes, dtype, seed)
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
    check(student, grads, ratio * total if total > 0 else 1.0,
          f"{len(grads)} tensors of shapes {shapes}, {dtype}, seed {seed}, max_norm = "
          f"{ratio} x total",
          hint="scale by one global factor: clipping each tensor by its own norm changes "
               "the direction of the gradient.")


@given(shapes=shapes, dtype=float_dtypes(), seed=seeds(), ratio=st.sampled_from([1.0, 1.5, 10.0]))
def test_clip_below_threshold_keeps_values(student, shapes, dtype, seed, ratio):
    """At or below the threshold the factor is min(1, ...) = 1 (up to eps): the
    gradients keep their values."""
    grads = make(shapes, dtype, seed)
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
    check(student, grads, ratio * total + 1e-3,
          f"{len(grads)} tensors of shapes {shapes}, {dtype}, seed {seed}, max_norm = "
          f"{ratio} x total", hint="never scale up: the factor is min(1, max_norm / (total + eps)).")


@given(shapes=shapes, dtype=float_dtypes(), seed=seeds())
def test_clip_does_not_modify_inputs(student, shapes, dtype, seed):
    """clip_grad_norm returns new tensors and leaves its inputs unchanged."""
    grads = make(shapes, dtype, seed)
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
    clipped, _ = unpack(student.clip_grad_norm.pure(grads, 0.5 * total + 1e-9), 2,
                        "clip_grad_norm")
    expected, _ = clip_grad_norm(grads, 0.5 * total + 1e-9)
    for i, (a, e) in enumerate(zip(clipped, expected)):
        assert_close(a, e, what=f"clipped[{i}]", case=f"shapes {shapes}, seed {seed}")
