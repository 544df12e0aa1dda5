"""Shared fixtures.

``requires_r`` -- for tests that cross-check against R's lme4/lmerTest via rpy2.
Use it as a fixture (``def test_x(requires_r): ...``) or as a marker
(``@pytest.mark.requires_r``). Without R, rpy2, lme4 or lmerTest the test is
skipped with the reason; with ``LMMLITE_REQUIRE_R=1`` (set by ``.ci/run``) it
fails instead, so CI cannot silently skip the cross-check.
"""

from __future__ import annotations

import functools
import os
import shutil

import pytest


@functools.lru_cache(maxsize=None)
def r_unavailable_reason() -> str | None:
    """None if R, rpy2, lme4 and lmerTest can be used; otherwise why not."""
    if shutil.which("R") is None:
        return "R is not installed (apt-get install r-base-core r-cran-lme4 r-cran-lmertest)"
    try:
        from rpy2.robjects.packages import importr
    except Exception as exc:  # ImportError, or rpy2 failing to find libR
        return f"rpy2 is not usable ({type(exc).__name__}: {exc}); pip install 'rpy2<3.6'"
    for pkg in ("lme4", "lmerTest"):
        try:
            importr(pkg)
        except Exception as exc:
            return f"R package {pkg} cannot be loaded ({type(exc).__name__})"
    return None


def _require_r() -> None:
    reason = r_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("LMMLITE_REQUIRE_R") == "1":
        pytest.fail(f"LMMLITE_REQUIRE_R=1 but the lme4 cross-check cannot run: {reason}",
                    pytrace=False)
    pytest.skip(f"lme4 cross-check skipped: {reason}")


@pytest.fixture(scope="session")
def requires_r() -> None:
    """Skip (locally) or fail (with LMMLITE_REQUIRE_R=1) when R/lme4 is unavailable."""
    _require_r()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_r: needs R with lme4 and lmerTest through rpy2 "
        "(skipped without them; fails with LMMLITE_REQUIRE_R=1)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("requires_r") is not None:
        _require_r()
