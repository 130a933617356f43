import pytest
import torch

import ember
from helpers.opcheck import check_op

CASES = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (4,)]),
    ("add_scalar", lambda a: 2.5 + a, lambda a: 2.5 + a, [(3,)]),
    ("mul_bcast", lambda a, b: a * b, lambda a, b: a * b, [(2, 1, 4), (3, 1)]),
    ("linear", ember.ops.linear, torch.nn.functional.linear, [(5, 3), (4, 3), (4,)]),
    ("matmul_1d", lambda a, b: a @ b, lambda a, b: a @ b, [(3,), (2, 3, 4)]),
    ("sum_axes", lambda a: a.sum((0, -1), keepdim=True), lambda a: a.sum((0, -1), keepdim=True), [(2, 3, 4)]),
]


@pytest.mark.parametrize("name,ef,tf,specs", CASES, ids=[c[0] for c in CASES])
def test_core_ops(name, ef, tf, specs):
    check_op(ef, tf, specs)
