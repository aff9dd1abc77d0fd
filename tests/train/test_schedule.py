"""Warm-up + cosine learning-rate schedule: values at known steps, and the LambdaLR wrapper."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gexcore.train.schedule import warmup_cosine, warmup_cosine_scheduler


def test_warmup_rises_linearly_and_never_starts_at_zero():
    assert warmup_cosine(0, 100, 10, 0.1) == pytest.approx(1 / 11)
    assert warmup_cosine(4, 100, 10, 0.1) == pytest.approx(5 / 11)
    assert warmup_cosine(9, 100, 10, 0.1) == pytest.approx(10 / 11)


def test_cosine_goes_from_one_to_the_floor_and_stays():
    assert warmup_cosine(10, 100, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)   # half-way
    quarter = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25))
    assert warmup_cosine(10 + 90 // 4, 100, 10, 0.1) == pytest.approx(quarter, rel=1e-2)
    assert warmup_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 100, 10, 0.1) == pytest.approx(0.1)


def test_no_warmup_starts_at_the_peak_and_decreases():
    values = [warmup_cosine(step, 50, 0, 0.0) for step in range(51)]
    assert values[0] == 1.0 and values[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_scheduler_sets_the_optimiser_lr_each_step():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=2.0)
    scheduler = warmup_cosine_scheduler(optimizer, total_steps=20, warmup_steps=4,
                                        min_ratio=0.05)
    seen = []
    for step in range(20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([2.0 * warmup_cosine(s, 20, 4, 0.05) for s in range(20)])
    assert max(seen) == pytest.approx(2.0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"total_steps": 0, "warmup_steps": 0, "min_ratio": 0.1}, "total_steps"),
    ({"total_steps": 10, "warmup_steps": 11, "min_ratio": 0.1}, "warmup_steps"),
    ({"total_steps": 10, "warmup_steps": 1, "min_ratio": 1.5}, "min_ratio"),
])
def test_scheduler_arguments_are_checked(kwargs, message):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=message):
        warmup_cosine_scheduler(optimizer, **kwargs)
