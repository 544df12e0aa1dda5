"""Shared fixtures.

``requires_r`` -- for tests that cross-check against R's lme4/lmerTest via rpy2.
Use it as a fixture (``def test_x(requires_r): ...``), as a marker
(``@pytest.mark.requires_r``) or call ``r_reference.require_r()``. Without R,
rpy2, lme4 or lmerTest the test is skipped with the reason; with
``LMMLITE_REQUIRE_R=1`` (set by ``.ci/run``) it fails instead, so CI cannot
silently skip the cross-check.
"""

import pytest

from lmmlite import load
from r_reference import require_r


@pytest.fixture(scope="module")
def sleepall():
    """The slides' sleepall: sleepstudy from day 2 on, with Days counted from there."""
    sleepstudy = load("sleepstudy")
    sleepall = sleepstudy[sleepstudy["Days"] >= 2].copy()
    sleepall["Days"] = sleepall["Days"] - 2
    return sleepall


@pytest.fixture(scope="session")
def requires_r() -> None:
    """Skip (locally) or fail (with LMMLITE_REQUIRE_R=1) when R/lme4 is unavailable."""
    require_r()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_r: needs R with lme4 and lmerTest through rpy2 "
        "(skipped without them; fails with LMMLITE_REQUIRE_R=1)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("requires_r") is not None:
        require_r()
