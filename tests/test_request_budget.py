"""A request's scan time: a base plus what each byte of its text earns (``sluice.budget``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sluice.budget import Budget, BudgetExceeded, RequestBudget


def test_spent_budget_is_crossed_until_more_text_earns_time() -> None:
    budget = RequestBudget(scan_seconds=0.5, per_byte=0.001)
    budget.charge(0.5)
    with pytest.raises(BudgetExceeded) as raised:
        budget.search_timeout(0.1)
    assert budget.exceeded is Budget.SCAN_TIME
    assert "SLUICEGATE_SCAN_BUDGET_MS" in str(raised.value)
    budget.earn(50)  # 50 bytes earn 50 ms
    assert budget.search_timeout(0.1) == pytest.approx(0.05)


@given(st.lists(st.integers(0, 10_000), max_size=20), st.floats(0, 1e-5))
def test_what_is_left_never_exceeds_base_plus_earned_minus_spent(
    sizes: list[int], per_byte: float
) -> None:
    budget = RequestBudget(scan_seconds=0.2, per_byte=per_byte)
    for size in sizes:
        budget.earn(size)
    budget.charge(0.1)
    left = 0.2 + sum(sizes) * per_byte - 0.1
    assert budget.search_timeout(10.0) == pytest.approx(left)


def test_no_scan_budget_earns_nothing_and_limits_nothing() -> None:
    budget = RequestBudget(per_byte=1.0)
    budget.earn(10**9)
    budget.charge(10**6)
    assert budget.search_timeout(0.1) == 0.1
