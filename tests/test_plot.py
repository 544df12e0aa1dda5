"""lmmlite.plot, headless: what each figure draws, checked against independent formulas.

Points are read back from the matplotlib artists (scatter offsets, line data,
error-bar segments) and compared with the fit's own accessors and with R's
definitions: ppoints for QQ positions, z·condsd for interval half-widths,
lattice's order (by the first term) for the caterpillar, the profile
confidence limits of confint for the ζ plot.
"""

import sys

import matplotlib
import numpy as np
import pytest
from scipy import stats

matplotlib.use("Agg")

import lmmlite as L                      # noqa: E402
from lmmlite import plot as P            # noqa: E402


@pytest.fixture(scope="module")
def sleep():
    d = L.load("sleepstudy")
    return L.lmer("Reaction ~ Days + (Days | Subject)", d)


@pytest.fixture(scope="module")
def plasma():
    return L.load("plasma")


def r_ppoints(n):
    """R's ppoints, written out."""
    i = np.arange(1, n + 1)
    return (i - 3 / 8) / (n + 1 / 4) if n <= 10 else (i - 0.5) / n


def points(ax):
    """(x, y) of the first line drawn with circle markers."""
    line = next(ln for ln in ax.lines if ln.get_marker() == "o")
    return line.get_xdata(), line.get_ydata()


def half_widths(ax, axis):
    """Half-lengths of the error bars of an axes (horizontal: axis 0, vertical: 1)."""
    segs = np.array(ax.containers[0].lines[2][0].get_segments())
    return (segs[:, 1, axis] - segs[:, 0, axis]) / 2, segs[:, 0, 1 - axis]


def test_diagnostics_of_an_lmer_fit(sleep):
    fig = P.plot_diagnostics(sleep)
    a, b, c, d = fig.axes
    n = sleep.nobs
    xy = a.collections[0].get_offsets()
    assert xy.shape == (n, 2)
    np.testing.assert_allclose(xy[:, 0], sleep.fitted())
    np.testing.assert_allclose(xy[:, 1], sleep.residuals())
    x, y = points(b)
    np.testing.assert_allclose(x, stats.norm.ppf(r_ppoints(n)), rtol=1e-12)
    np.testing.assert_allclose(y, np.sort(sleep.residuals() / sleep.sigma), rtol=1e-12)
    sl = c.collections[0].get_offsets()
    np.testing.assert_allclose(sl[:, 1], np.sqrt(np.abs(sleep.residuals() / sleep.sigma)))
    assert len(d.get_xticklabels()) == 18 and d.get_xlabel() == "Subject"
    assert fig._suptitle.get_text() == sleep.formula


def test_diagnostics_of_a_small_lm_use_ppoints_for_n_at_most_10(plasma):
    small = plasma.iloc[:8]
    m = L.lm("conc ~ age", small)
    fig = P.plot_diagnostics(m)
    x, _ = points(fig.axes[1])
    np.testing.assert_allclose(x, stats.norm.ppf((np.arange(1, 9) - 3 / 8) / 8.25))
    lev = fig.axes[3].collections[0].get_offsets()[:, 0]          # residuals vs leverage
    np.testing.assert_allclose(lev, L.hatvalues(m))
    g = P.plot_diagnostics(L.lm("conc ~ age", plasma), group="group", data=plasma)
    assert [t.get_text() for t in g.axes[3].get_xticklabels()] == \
        [str(v) for v in plasma["group"].cat.categories]


def test_diagnostics_which_panels(sleep):
    fig = P.plot_diagnostics(sleep, which=[3, 2])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["Scale-location",
                                                  "Normal QQ plot of scaled residuals"]
    with pytest.raises(L.LmmError, match="which"):
        P.plot_diagnostics(sleep, which=[5])


def test_qq_ranef_coordinates_and_intervals(sleep):
    fig = P.qq_ranef(sleep)
    re = sleep.ranef()
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    for ax, term in zip(fig.axes, ["(Intercept)", "Days"]):
        modes, sd = re["Subject"][term].to_numpy(), re.condsd["Subject"][term].to_numpy()
        x, y = points(ax)
        np.testing.assert_allclose(x, stats.norm.ppf((np.arange(1, 19) - 0.5) / 18))
        order = np.argsort(modes)
        np.testing.assert_allclose(y, modes[order])
        hw, _ = half_widths(ax, 1)
        np.testing.assert_allclose(hw, stats.norm.ppf(0.975) * sd[order])


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_caterpillar_sorted_with_z_condsd(sleep, level):
    fig = P.caterpillar(sleep, level=level)
    re = sleep.ranef()
    order = np.argsort(re["Subject"]["(Intercept)"].to_numpy())   # lattice: by the first term
    z = stats.norm.ppf(1 - (1 - level) / 2)
    ax0, ax1 = fig.axes
    assert [t.get_text() for t in ax0.get_yticklabels()] == [str(s) for s in re["Subject"].index[order]]
    for ax, term in ((ax0, "(Intercept)"), (ax1, "Days")):
        assert ax.get_title() == term
        hw, pos = half_widths(ax, 0)
        np.testing.assert_allclose(pos, np.arange(18))
        np.testing.assert_allclose(hw, z * re.condsd["Subject"][term].to_numpy()[order])
        x = ax.containers[0].lines[0].get_xdata()
        np.testing.assert_allclose(x, re["Subject"][term].to_numpy()[order])
    assert np.all(np.diff(ax0.containers[0].lines[0].get_xdata()) >= 0)


def test_caterpillar_one_row_per_grouping_factor():
    pen = L.load("sleepstudy")      # any crossed model: Subject x a day block
    pen["block"] = (pen["Days"] // 3).astype(str)
    f = L.lmer("Reaction ~ 1 + (1 | Subject) + (1 | block)", pen)
    fig = P.caterpillar(f)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in visible] == ["Subject", "block"]
    assert len(visible[1].get_yticklabels()) == 4
    only = P.caterpillar(f, group="block")
    assert len(only.axes) == 1


def test_profile_plot_crosses_at_the_profile_interval(plasma):
    m = L.lmer("conc ~ age + (1 | group)", plasma)
    fig = P.plot_profile(m)
    ci = L.confint(m, quiet=True)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == list(ci.index)
    for ax in fig.axes[:len(ci)]:
        x, zeta = points(ax)
        assert np.all(np.diff(zeta) > 0) and abs(zeta).max() == pytest.approx(2.5758, abs=1e-3)
        drops = [ln.get_xdata()[0] for ln in ax.lines[1:]
                 if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]
                 and ln.get_ydata()[0] == 0]
        assert len(drops) == 10
        lo, hi = ci.loc[ax.get_title()]
        for end in (lo, hi):
            assert min(abs(np.array(drops) - end)) < 2e-3 * (hi - lo), (ax.get_title(), end)


def test_plot_groups_lines_are_the_predictions(sleep):
    fig = P.plot_groups(sleep)
    ax = fig.axes[0]
    assert len(ax.collections) == 18
    assert sum(len(c.get_offsets()) for c in ax.collections) == sleep.nobs
    assert ax.get_xlabel() == "Days" and ax.get_ylabel() == "Reaction"
    pop = ax.lines[-1]
    b = sleep.fixef
    np.testing.assert_allclose(pop.get_ydata(), b["(Intercept)"] + b["Days"] * pop.get_xdata())
    coef = L.coef(sleep)["Subject"]
    first = ax.lines[0]                          # subject 308
    np.testing.assert_allclose(first.get_ydata(), coef.loc[308, "(Intercept)"]
                               + coef.loc[308, "Days"] * first.get_xdata())


def test_plot_groups_follows_transforms():
    d = L.load("sleepstudy")
    f = L.lmer("Reaction ~ log(Days + 1) + (1 | Subject)", d)
    line = P.plot_groups(f).axes[0].lines[-1]
    b = f.fixef
    np.testing.assert_allclose(line.get_ydata(),
                               b.iloc[0] + b.iloc[1] * np.log(line.get_xdata() + 1))


def test_figures_show_as_png_in_notebooks(sleep):
    png = P.caterpillar(sleep)._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_groups_of_an_lm_needs_data(plasma):
    m1 = L.lm("conc ~ age + group", plasma)
    with pytest.raises(L.LmmError, match="data"):
        P.plot_groups(m1)
    fig = P.plot_groups(m1, data=plasma, group="group")
    assert len(fig.axes[0].lines) == 4           # one line per group, no population line


def test_errors(sleep, plasma, monkeypatch):
    with pytest.raises(L.LmmError, match="lmer fit"):
        P.caterpillar(L.lm("conc ~ age", plasma))
    with pytest.raises(L.LmmError, match="grouping factor"):
        P.qq_ranef(sleep, group="nope")
    with pytest.raises(L.LmmError, match="level"):
        P.caterpillar(sleep, level=95)
    monkeypatch.setattr(P, "_FIGURE", [])                 # as in a fresh process
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(L.LmmError, match="matplotlib"):
        P.caterpillar(sleep)
