"""Figures for checking a fit: diagnostics, random effects, profiles, fitted lines.

matplotlib is optional (``pip install "lmmlite[plot]"``) and imported only here.
Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (no global state, works headless); in a notebook the figure is shown
(as PNG) when it is the cell's value, and ``fig.savefig(...)`` writes it.

=====================  ====================================================
``plot_diagnostics``   residuals vs fitted, normal QQ of the scaled
                       residuals, scale-location, residuals by group (R's
                       ``plot(fit)`` and ``plot.lm``)
``qq_ranef``           normal QQ plot of each random effect with ± z·condsd
                       (lme4's ``qqmath(ranef(fit, condVar = TRUE))``)
``caterpillar``        conditional modes ± z·condsd, sorted (lme4's
                       ``dotplot(ranef(fit, condVar = TRUE))``)
``plot_profile``       ζ against each parameter (lme4's ``xyplot(profile(fit))``)
``plot_groups``        the data with the population line and each group's line
=====================  ====================================================

QQ plots put the theoretical quantiles on the x axis and the sorted values on
the y axis (R's ``qqnorm``; lme4's ``qqmath`` swaps the axes), with R's
plotting positions ``ppoints(n)``: (i - a)/(n + 1 - 2a), a = 3/8 for n <= 10,
else 1/2, and a line through the quartiles (R's ``qqline``).
"""

import numpy as np
import pandas as pd
from scipy import interpolate, stats

from .errors import LmmError, MissingDependencyError
from .fit import FitBase
from .influence import hatvalues
from .confint import profile_of


_FIGURE = []


def _figure(width, height):
    """A Figure (no pyplot) that notebooks show as PNG when it is a cell's value."""
    if not _FIGURE:
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise MissingDependencyError("lmmlite.plot needs matplotlib: "
                                         "pip install matplotlib (or lmmlite[plot])") from None

        class LmmFigure(Figure):
            def _repr_png_(self):
                import io
                buf = io.BytesIO()
                self.savefig(buf, format="png", bbox_inches="tight")
                return buf.getvalue()

        _FIGURE.append(LmmFigure)
    return _FIGURE[0](figsize=(width, height), layout="constrained")


def _panels(n, width, height, ncol=3):
    """A figure with n panels in rows of ``ncol`` (unused ones hidden); (fig, axes)."""
    ncol = min(ncol, n)
    nrow = -(-n // ncol)
    fig = _figure(width * ncol, height * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _check(fit, mixed=False):
    if not isinstance(fit, FitBase) or (mixed and not fit.mixed):
        kind = "an lmer fit" if mixed else "an lm or lmer fit"
        raise LmmError(f"expected {kind}, not {type(fit).__name__}")


def ppoints(n):
    """R's ``ppoints(n)``: the plotting positions of a normal QQ plot."""
    a = 3 / 8 if n <= 10 else 1 / 2
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def normal_quantiles(n):
    """Theoretical quantiles of a QQ plot of n points: qnorm(ppoints(n))."""
    return stats.norm.ppf(ppoints(n))


def _qq(ax, values, errors=None, z=None):
    """Sorted values against normal quantiles, the quartile line, optional error bars."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    x, y = normal_quantiles(len(values)), values[order]
    if errors is not None:
        ax.errorbar(x, y, yerr=z * np.asarray(errors)[order], fmt="none", ecolor="0.6", lw=1)
    ax.plot(x, y, "o", color="C0", ms=4)
    # R's qqline: through the first and third quartiles
    q = np.quantile(values, [0.25, 0.75])
    zq = stats.norm.ppf([0.25, 0.75])
    slope = (q[1] - q[0]) / (zq[1] - zq[0])
    ax.axline((zq[0], q[0]), slope=slope if np.isfinite(slope) else 0.0, color="C3", lw=1)
    ax.set_xlabel("standard normal quantile")
    return order


# ---------------------------------------------------------------------- diagnostics
def _scaled_residuals(fit):
    """Pearson residuals sqrt(w)(y - ŷ) and the same divided by σ̂."""
    if fit.mixed:
        r = fit.residuals(type="pearson")
    else:
        w = 1.0 if fit.design.weights is None else np.sqrt(fit.design.weights)
        r = fit.residuals() * w
    return r, r / fit.sigma


def _group_values(fit, group, data):
    """(name, the grouping value of each row the fit used) or None."""
    if group is None:
        if not fit.mixed:
            return None
        b = fit.blocks[0]
        return b.group, pd.Categorical(np.asarray(b.levels, dtype=object)[b.codes],
                                       categories=b.levels)
    if isinstance(group, str):
        if fit.mixed and group in fit.ngrps:
            b = next(b for b in fit.blocks if b.group == group)
            return group, pd.Categorical(np.asarray(b.levels, dtype=object)[b.codes],
                                         categories=b.levels)
        data = getattr(fit, "data", None) if data is None else data
        if data is None or group not in data.columns:
            raise LmmError(f"group {group!r} is neither a grouping factor of the fit nor a "
                           "column of the data (pass data=)")
        vals = data.loc[fit.frame.row_index, group]
        return group, pd.Categorical(vals)
    vals = pd.Series(group)
    if len(vals) != fit.nobs:
        raise LmmError(f"group has {len(vals)} values for {fit.nobs} observations")
    return getattr(group, "name", None) or "group", pd.Categorical(vals)


def plot_diagnostics(fit, group=None, data=None, which=(1, 2, 3, 4)):
    """Four residual plots of a fit (R's ``plot(fit)``, ``plot.lm``, lattice by group).

    1. Pearson residuals against fitted values: a shapeless band around 0 if
       the mean structure is right and the variance constant.
    2. Normal QQ plot of the scaled residuals (Pearson residual / σ̂): on the
       line if the errors are normal.
    3. Scale-location: sqrt(|scaled residual|) against fitted values: flat if
       the variance is constant.
    4. Residuals by group (boxplots): each centred on 0.  ``group`` is a
       grouping factor of the fit (default: the one with most levels), a
       column of ``data`` (default the fit's data) or one value per row.  An
       lm fit without ``group`` shows residuals against leverage instead.

    ``which`` selects panels, as R's ``plot.lm(which = )``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check(fit)
    which = [int(k) for k in ([which] if np.isscalar(which) else which)]
    if not which or any(k not in (1, 2, 3, 4) for k in which):
        raise LmmError(f"which must be panels among 1, 2, 3, 4, not {which}")
    fitted = fit.fitted().to_numpy()
    r, rs = _scaled_residuals(fit)
    r, rs = r.to_numpy(), rs.to_numpy()
    shape = {1: (1, 1), 2: (1, 2), 3: (1, 3)}.get(len(which), (2, 2))
    fig = _figure(4.5 * shape[1] if len(which) < 3 else 3.8 * shape[1], 3.5 * shape[0])
    axes = np.atleast_1d(fig.subplots(*shape)).ravel()
    for ax in axes[len(which):]:
        ax.set_visible(False)
    panels = dict(zip(which, axes))
    if 1 in panels:
        ax = panels[1]
        ax.scatter(fitted, r, s=12, color="0.25")
        ax.axhline(0, color="C3", lw=1)
        ax.set(xlabel="fitted value", ylabel="Pearson residual", title="Residuals vs fitted")
    if 2 in panels:
        _qq(panels[2], rs)
        panels[2].set(ylabel="scaled residual", title="Normal QQ plot of scaled residuals")
    if 3 in panels:
        ax = panels[3]
        ax.scatter(fitted, np.sqrt(np.abs(rs)), s=12, color="0.25")
        ax.set(xlabel="fitted value", ylabel="sqrt(|scaled residual|)", title="Scale-location")
    if 4 in panels:
        _by_group(panels[4], fit, r, rs, _group_values(fit, group, data))
    fig.suptitle(fit.formula)
    return fig


def _by_group(ax, fit, r, rs, grouping):
    """Panel 4: boxplots of the residuals per group (residuals vs leverage without a group)."""
    if grouping is None:
        ax.scatter(hatvalues(fit).to_numpy(), rs, s=12, color="0.25")
        ax.axhline(0, color="C3", lw=1)
        ax.set(xlabel="leverage", ylabel="scaled residual", title="Residuals vs leverage")
        return
    name, cat = grouping
    levels = [lev for lev in cat.categories if np.any(cat == lev)]
    ax.boxplot([r[np.asarray(cat == lev)] for lev in levels])
    ax.set_xticks(range(1, len(levels) + 1), [str(v) for v in levels],
                  rotation=90 if len(levels) > 8 else 0, fontsize="small")
    ax.axhline(0, color="C3", lw=1)
    ax.set(xlabel=name, ylabel="Pearson residual", title=f"Residuals by {name}")


# ---------------------------------------------------------------------- random effects
def _ranef_panels(fit, group, level):
    """z for ``level`` and [(grouping factor, term, modes, condsd)] for one factor or all."""
    _check(fit, mixed=True)
    z = _z(level)
    re = fit.ranef(condvar=True)
    if group is not None and group not in re:
        raise LmmError(f"{group!r} is not a grouping factor of the fit; "
                       f"choose from {', '.join(re)}")
    out = []
    for g in ([group] if group is not None else list(re)):
        for term in re[g].columns:
            out.append((g, term, re[g][term], re.condsd[g][term]))
    return z, out


def _z(level):
    if not 0 < level < 1:
        raise LmmError(f"level must be between 0 and 1, not {level}")
    return stats.norm.ppf(1 - (1 - level) / 2)


def qq_ranef(fit, group=None, level=0.95):
    """Normal QQ plot of the conditional modes of each random effect.

    One panel per grouping factor and term, with vertical bars ± z·condsd
    (z for ``level``).  Under the model the random effects are normal, so
    the points should lie near a straight line; the conditional modes are
    shrunk towards 0, so the line is flatter than the estimated sd.

    Returns
    -------
    matplotlib.figure.Figure
    """
    z, panels = _ranef_panels(fit, group, level)
    fig, axes = _panels(len(panels), 3.6, 3.2)
    for ax, (g, term, modes, sd) in zip(axes, panels):
        _qq(ax, modes.to_numpy(), sd.to_numpy(), z)
        ax.set(ylabel="conditional mode", title=f"{g}: {term}")
    return fig


def caterpillar(fit, group=None, level=0.95):
    """Conditional modes ± z·condsd of each level, sorted (lme4's dotplot of ranef).

    One row of panels per grouping factor (or only ``group``), one panel per
    term; the levels are sorted by the first term's conditional mode, in the
    same order in every panel of the row, as lattice's dotplot.  An interval
    that excludes 0 marks a level that differs from the average one (not a
    test: the predictions are not independent).

    Returns
    -------
    matplotlib.figure.Figure
    """
    z, panels = _ranef_panels(fit, group, level)
    rows = list(dict.fromkeys(g for g, *_ in panels))
    ncol = max(sum(1 for p in panels if p[0] == g) for g in rows)
    heights = [max(1.5, min(10.0, 0.2 * fit.ngrps[g] + 0.8)) for g in rows]
    fig = _figure(3.6 * ncol + 0.6, sum(heights))
    axes = np.array(fig.subplots(len(rows), ncol, squeeze=False,
                                 gridspec_kw={"height_ratios": heights}))
    for i, g in enumerate(rows):
        mine = [p for p in panels if p[0] == g]
        order = np.argsort(mine[0][2].to_numpy(), kind="stable")
        labels = [str(v) for v in mine[0][2].index[order]]
        pos = np.arange(len(order))
        for j, ax in enumerate(axes[i]):
            if j >= len(mine):
                ax.set_visible(False)
                continue
            _, term, modes, sd = mine[j]
            ax.errorbar(modes.to_numpy()[order], pos, xerr=z * sd.to_numpy()[order], fmt="o",
                        ms=4, color="C0", ecolor="0.4", elinewidth=1)
            ax.axvline(0, color="C3", lw=1)
            ax.set_yticks(pos, labels if j == 0 and len(pos) <= 60 else [""] * len(pos),
                          fontsize="small")
            ax.set(title=term, xlabel=f"conditional mode ± {level:.0%} interval")
            ax.grid(axis="y", color="0.9")
        axes[i, 0].set_ylabel(g)
    return fig


# ---------------------------------------------------------------------- profile
PROFILE_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)


def profile_zeta(fit, parm=None, alphamax=0.01, npts=6):
    """ζ on a grid for each parameter: {name: (values, ζ)} (lme4's ``profile``).

    For each parameter the ends where |ζ| = z_{1 - alphamax/2} are found as
    in ``confint(method="profile")`` (a bound if not reached), and ζ is
    evaluated at ``npts`` points on each side of the estimate (ζ = 0 there).
    """
    _check(fit, mixed=True)
    zmax = stats.norm.ppf(1 - alphamax / 2)
    names = None if parm is None else ([parm] if isinstance(parm, str) else list(parm))
    pr = profile_of(fit)
    out = {}
    try:
        for i in pr.index(names):
            est = pr.est[i]
            ends = pr.interval(i, zmax)
            xs, zs = [est], [0.0]
            for end in ends:
                for t in np.linspace(0, 1, npts + 1)[1:]:
                    x = est + t * (end - est)
                    if x != est:
                        xs.append(x)
                        zs.append(pr.zeta(i, x))
            order = np.argsort(xs)
            out[pr.names[i]] = (np.asarray(xs)[order], np.asarray(zs)[order])
    finally:
        pr.finish()
    return out


def _crossings(x, zeta, z):
    """Where the spline through (x, ζ) reaches -z and +z (None where it does not)."""
    keep = np.concatenate([[True], np.diff(x) > 0])
    x, zeta = x[keep], zeta[keep]
    if len(x) < 3 or np.any(np.diff(zeta) <= 0):
        return [None, None]
    inverse = interpolate.PchipInterpolator(zeta, x)     # ψ as a function of ζ (backSpline)
    # the ends are roots of |ζ| = z_max: within round-off of it
    return [float(inverse(np.clip(t, zeta[0], zeta[-1])))
            if zeta[0] - 1e-6 <= t <= zeta[-1] + 1e-6 else None for t in (-z, z)]


def plot_profile(fit, parm=None, levels=PROFILE_LEVELS, npts=6):
    """ζ against each parameter, one panel per parameter (lme4's profile plot).

    ζ(ψ) = sign(ψ - ψ̂) sqrt(deviance profiled at ψ - minimum deviance) is
    a straight line if the likelihood is quadratic in ψ (Wald intervals would
    then be exact); curvature shows where profile intervals differ.  The
    dashed lines mark ζ = ±z for the confidence ``levels``, the vertical
    segments the profile confidence limits (where ζ crosses ±z).  Parameters
    are lme4's: .sig01, ... (sd and correlations of the random effects,
    term by term), .sigma, then the fixed effects.  REML fits are profiled
    on the ML deviance, as lme4 does.

    Returns
    -------
    matplotlib.figure.Figure
        Each panel's first line holds the (ψ, ζ) points.
    """
    prof = profile_zeta(fit, parm=parm, npts=npts)
    fig, axes = _panels(len(prof), 3.4, 2.9)
    zs = [stats.norm.ppf(0.5 + lev / 2) for lev in levels]
    for ax, (nm, (x, zeta)) in zip(axes, prof.items()):
        ax.plot(x, zeta, "-o", color="C0", ms=3)
        for z in zs:
            for sgn in (-1, 1):
                ax.axhline(sgn * z, color="0.8", lw=0.8, ls="--")
            for cx in _crossings(x, zeta, z):
                if cx is not None:
                    ax.plot([cx, cx], [0, np.interp(cx, x, zeta)], color="0.6", lw=0.8)
        ax.set(xlabel=nm, ylabel="ζ", title=nm)
    return fig


# ---------------------------------------------------------------------- fitted lines
def _default_x(fit, data):
    """The first numeric column of the data used by the fixed part (``log(Days + 1)``: Days)."""
    import re
    for term in fit.spec.terms:
        for label in term:
            for name in re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", label):
                if name in data.columns and pd.api.types.is_numeric_dtype(data[name]):
                    return name
    raise LmmError("no numeric variable of the fixed part to put on the x axis: pass x=")


def plot_groups(fit, x=None, group=None, data=None, npoints=50, max_groups=30):
    """The data with the population line and each group's fitted line.

    The lines are ``fit.predict`` on a grid of ``x`` (so transforms such as
    ``log(x + 1)`` or ``poly(x, 2)`` give curves), the other variables taken
    from each group's first row: the group lines include the random effects,
    the dashed population line does not (``re_form="~0"``).  For an lm fit
    the lines are its predictions per group (e.g. parallel lines for
    ``y ~ x + group``) and the dashed line is absent.

    Parameters
    ----------
    x : str, optional
        Column on the x axis (default: the first numeric variable of the
        fixed part).
    group : str, optional
        Column whose levels get a colour and a line (default: the fit's first
        grouping factor that is a column of the data).
    data : DataFrame, optional
        Default: the data the lmer fit was given (required for lm).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check(fit)
    data = getattr(fit, "data", None) if data is None else data
    if data is None:
        raise LmmError("plot_groups needs the data: pass data=")
    used = data.loc[fit.frame.row_index]
    x = _default_x(fit, used) if x is None else x
    if group is None:
        group = next((b.group for b in getattr(fit, "blocks", []) if b.group in used.columns),
                     None)
        if group is None:
            raise LmmError("no grouping factor of the fit is a column of the data: pass group=")
    for col in (x, group):
        if col not in used.columns:
            raise LmmError(f"{col!r} is not a column of the data")
    response = fit.spec.response
    y = pd.Series(fit.design.y, index=fit.frame.row_index)
    fig = _figure(6.5, 4.5)
    ax = fig.subplots()
    levels = list(pd.unique(used[group]))
    if hasattr(used[group], "cat"):
        levels = [lev for lev in used[group].cat.categories if lev in set(levels)]
    many = len(levels) > max_groups          # grey points and lines, no legend
    for k, lev in enumerate(levels):
        d = used[used[group] == lev]
        colour = "0.5" if many else f"C{k % 10}"
        ax.scatter(d[x], y.loc[d.index], s=14, color=colour, label=None if many else f"{group} {lev}")
        grid = _grid(d, x, npoints)
        ax.plot(grid[x], fit.predict(grid), color=colour, lw=1)
    if fit.mixed:
        grid = _grid(used, x, npoints)
        ax.plot(grid[x], fit.predict(grid, re_form="~0"), "k--", lw=2, label="population")
    ax.set(xlabel=x, ylabel=response)
    if len(levels) <= 10:
        ax.legend(fontsize="small")
    return fig


def _grid(rows, x, npoints):
    """``npoints`` rows over the range of ``x`` in ``rows``, the other columns of the first row."""
    values = np.linspace(rows[x].min(), rows[x].max(), npoints)
    grid = rows.iloc[[0] * npoints].reset_index(drop=True)
    grid[x] = values
    return grid
