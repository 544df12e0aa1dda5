"""Least-squares (estimated marginal) means and their differences.

The reference grid (Searle, Speed & Milliken 1980, "Population marginal means in
the linear model", Am. Stat. 34, 216-221) has one row per combination of the
levels of the fixed part's factors, with every numeric variable at its mean;
x_g is the fixed-effects row of grid point g (the fit's contrasts and
transforms). The marginal mean of a level (or cell) of some factors is the
equally weighted average of x_g'β̂ over the grid points with that level, so its
contrast vector is L = mean of those x_g. Each mean and each difference is a
t test of L'β̂ (:func:`lmmlite.inference.contest1d`: Satterthwaite's or
Kenward-Roger's df and standard error).

* :func:`ls_means`, :func:`difflsmeans`: lmerTest's tables, one block per
  factor term of the model (terms with a numeric variable are skipped).
* :func:`emmeans`: emmeans's table for ``specs`` (one factor or several),
  and with ``pairwise=True`` the pairwise differences with Tukey's adjustment
  (studentized range with each contrast's own df, as emmeans).
"""

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from . import printing as P
from .errors import LmmError
from .inference import contest1d
from .transforms import Factor, level_label


def _variables(fit):
    """The fixed part's variables: name -> list of levels (factor) or the mean (numeric)."""
    out = {}
    for t in fit.spec.terms:
        for v in t:
            if v in out:
                continue
            col = fit.frame.columns[v]
            if isinstance(col, Factor):
                out[v] = list(col.values.categories)
            else:
                arr = np.asarray(col, dtype=float)
                if arr.ndim != 1:
                    raise LmmError(f"ls_means/emmeans: the matrix-valued term {v} is not supported")
                out[v] = float(np.mean(arr))
    return out


def reference_grid(fit):
    """R's expand.grid of the factors' levels (first varying fastest), covariates at their mean."""
    vs = _variables(fit)
    factors = [v for v, x in vs.items() if isinstance(x, list)]
    combos = list(itertools.product(*[vs[f] for f in reversed(factors)]))
    grid = pd.DataFrame({f: [c[len(factors) - 1 - i] for c in combos]
                         for i, f in enumerate(factors)})
    for f in factors:
        grid[f] = pd.Categorical(grid[f], categories=vs[f])
    for v, x in vs.items():
        if not isinstance(x, list):
            grid[v] = np.full(len(grid) if factors else 1, x)
    return grid, factors


def marginal_contrasts(fit, factors):
    """Contrast vectors of the marginal means of ``factors``' cells: (labels, L)."""
    grid, all_factors = reference_grid(fit)
    missing = [f for f in factors if f not in all_factors]
    if missing:
        raise LmmError(f"{', '.join(missing)} is not a factor of the model's fixed part "
                       f"(factors: {', '.join(all_factors) or 'none'})")
    X = fit.design.fixed_matrix(grid)
    cells = list(itertools.product(*[list(grid[f].cat.categories) for f in reversed(factors)]))
    cells = [tuple(reversed(c)) for c in cells]          # first factor fastest, as R
    L = []
    for cell in cells:
        mask = np.ones(len(grid), dtype=bool)
        for f, lev in zip(factors, cell):
            mask &= (grid[f] == lev).to_numpy()
        L.append(X[mask].mean(axis=0))
    return cells, np.array(L)


def factor_terms(fit):
    """The fixed-effects terms made of factors only (lmerTest's ls_means terms)."""
    return [t for t in fit.spec.terms if all(fit.frame.is_factor(v) for v in t)]


def _tests(fit, L, names, ddf, level):
    rows = [contest1d(fit, row, ddf=ddf) for row in L]
    tab = pd.concat(rows, ignore_index=True)
    tab.index = names
    q = stats.t.ppf(1 - (1 - level) / 2, tab["df"])
    tab.insert(4, "lower", tab["Estimate"] - q * tab["Std. Error"])
    tab.insert(5, "upper", tab["Estimate"] + q * tab["Std. Error"])
    return tab


class LsMeans:
    """lmerTest's ls_means table: ``table`` (a DataFrame) printed as lmerTest."""

    def __init__(self, table, level, ddf):
        self.table, self.level, self.ddf = table, level, ddf

    def __str__(self):
        t = self.table.copy()
        if t.empty:      # R prints the bare header of a 0-row table
            body = "     " + " ".join(t.columns)
        else:
            t["df"] = P.r_round(t["df"].to_numpy(dtype=float), 1)
            body = P.print_coefmat(t, digits=5, has_pvalue=True, cs_ind=(0, 1, 4, 5),
                                   tst_ind=(3,))
        return ("Least Squares Means table:\n\n" + body
                + f"\n\n  Confidence level: {P.format_scalar(100 * self.level, digits=2)}%\n"
                + f"  Degrees of freedom method: {self.ddf} \n")

    __repr__ = __str__

    def _repr_html_(self):
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


def _which(fit, which):
    terms = factor_terms(fit)
    labels = [":".join(t) for t in terms]
    if which is None:
        return terms
    which = [which] if isinstance(which, str) else list(which)
    bad = [w for w in which if w not in labels]
    if bad:
        raise LmmError(f"which: {', '.join(bad)} is not a factor term of the model "
                       f"(factor terms: {', '.join(labels) or 'none'})")
    return [terms[labels.index(w)] for w in which]


def _cell_names(term, cells):
    return [":".join(f"{v}{level_label(lev)}" for v, lev in zip(term, c)) for c in cells]


def _pairs(names, L):
    """All differences row i - row j, i < j (lmerTest's and emmeans's order)."""
    idx = list(itertools.combinations(range(len(names)), 2))
    return [f"{names[i]} - {names[j]}" for i, j in idx], np.array([L[i] - L[j] for i, j in idx])


def ls_means(fit, which=None, level=0.95, ddf="Satterthwaite", pairwise=False):
    """lmerTest's ``ls_means``: the least-squares means of each factor term.

    Parameters
    ----------
    fit : LmerFit
    which : str or list of str, optional
        Factor terms (default: all terms made of factors only).
    level : float
        Confidence level of ``lower`` and ``upper``.
    ddf : {"Satterthwaite", "Kenward-Roger"}
    pairwise : bool
        The pairwise differences instead (as :func:`difflsmeans`).

    Returns
    -------
    LsMeans
        ``.table``: Estimate, Std. Error, df, t value, lower, upper, Pr(>|t|).
    """
    blocks = []
    for term in _which(fit, which):
        cells, L = marginal_contrasts(fit, list(term))
        names = _cell_names(term, cells)
        if pairwise:
            names, L = _pairs(names, L)
        blocks.append(_tests(fit, L, names, ddf, level))
    cols = ["Estimate", "Std. Error", "df", "t value", "lower", "upper", "Pr(>|t|)"]
    table = pd.concat(blocks) if blocks else pd.DataFrame(columns=cols)
    return LsMeans(table, level, ddf)


def difflsmeans(fit, which=None, level=0.95, ddf="Satterthwaite"):
    """lmerTest's ``difflsmeans``: pairwise differences of the least-squares means."""
    return ls_means(fit, which=which, level=level, ddf=ddf, pairwise=True)


# --------------------------------------------------------------------------
# emmeans
def tukey_pvalue(t, df, k):
    """P(studentized range of k means > √2 |t|) with df (emmeans's "tukey" adjustment)."""
    t = np.atleast_1d(np.abs(np.asarray(t, dtype=float)))
    df = np.broadcast_to(np.asarray(df, dtype=float), t.shape)
    return np.array([stats.studentized_range.sf(np.sqrt(2) * ti, k, d) for ti, d in zip(t, df)])


class EmmGrid:
    """emmeans's summary: ``table`` printed as emmeans prints it, ``heading`` notes."""

    def __init__(self, table, notes, est_col):
        self.table, self.notes, self.est_col = table, notes, est_col

    def __str__(self):
        return (_print_emm(self.table, self.est_col) + "\n\n"
                + "".join(n + " \n" for n in self.notes))

    __repr__ = __str__

    def _repr_html_(self):
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


class Emmeans:
    """``emmeans`` (the means) and, with ``pairwise=True``, ``contrasts`` (the differences)."""

    def __init__(self, emmeans, contrasts=None):
        self.emmeans, self.contrasts = emmeans, contrasts

    def __str__(self):
        if self.contrasts is None:
            return str(self.emmeans)
        return "$emmeans\n" + str(self.emmeans) + "\n$contrasts\n" + str(self.contrasts)

    __repr__ = __str__


def emmeans(fit, specs, pairwise=False, ddf="Satterthwaite", level=0.95):
    """Estimated marginal means as R's emmeans, averaged over the other factors.

    Parameters
    ----------
    fit : LmerFit
    specs : str or list of str
        The factor(s) whose levels (cells) get a mean, e.g. ``"recipe"`` or
        ``"~ recipe"``.
    pairwise : bool
        Also the pairwise differences, Tukey-adjusted p-values.
    ddf : {"Satterthwaite", "Kenward-Roger"}
        Df method (emmeans's ``lmer.df``; note emmeans's own default is
        Kenward-Roger).
    level : float
        Confidence level of lower.CL and upper.CL.

    Notes
    -----
    emmeans itself switches to asymptotic df (``df = Inf``) above 3000
    observations (its ``lmerTest.limit`` and ``pbkrtest.limit``, because
    pbkrtest forms n x n matrices); lmmlite always computes the df (in q x q
    algebra: kenward_roger.py, satterthwaite_exact.py).

    Returns
    -------
    Emmeans
        ``.emmeans.table`` (factor columns, emmean, SE, df, lower.CL, upper.CL) and
        ``.contrasts.table`` (contrast, estimate, SE, df, t.ratio, p.value).
    """
    if isinstance(specs, str):
        specs = [s.strip() for s in specs.replace("~", "").split("+")]
    specs = list(specs)
    cells, L = marginal_contrasts(fit, specs)
    tab = _tests(fit, L, range(len(cells)), ddf, level)
    out = pd.DataFrame({f: [level_label(c[i]) for c in cells] for i, f in enumerate(specs)})
    out["emmean"] = tab["Estimate"].to_numpy()
    out["SE"] = tab["Std. Error"].to_numpy()
    out["df"] = tab["df"].to_numpy()
    out["lower.CL"] = tab["lower"].to_numpy()
    out["upper.CL"] = tab["upper"].to_numpy()
    others = [f for f in reference_grid(fit)[1] if f not in specs]
    notes = []
    if others:
        notes.append(f"Results are averaged over the levels of: {', '.join(others)}")
    notes.append(f"Degrees-of-freedom method: {ddf.lower()}")
    cnotes = list(notes)
    notes.append(f"Confidence level used: {P.format_scalar(level, digits=7).strip()}")
    means = EmmGrid(out, notes, "emmean")
    if not pairwise:
        return Emmeans(means)
    # emmeans names numeric-looking levels with their factor: temperature175
    numeric = [all(_is_number(level_label(x)) for x in {c[i] for c in cells})
               for i in range(len(specs))]
    labels = [" ".join((f if num else "") + level_label(x)
                       for f, num, x in zip(specs, numeric, c)) for c in cells]
    names, D = _pairs(labels, L)
    dt = pd.concat([contest1d(fit, row, ddf=ddf) for row in D], ignore_index=True)
    k = len(cells)
    con = pd.DataFrame({"contrast": names, "estimate": dt["Estimate"].to_numpy(),
                        "SE": dt["Std. Error"].to_numpy(), "df": dt["df"].to_numpy(),
                        "t.ratio": dt["t value"].to_numpy()})
    con["p.value"] = tukey_pvalue(con["t.ratio"], con["df"], k) if k > 2 else \
        2 * stats.t.sf(np.abs(con["t.ratio"]), con["df"])
    if k > 2:
        cnotes.append(f"P value adjustment: tukey method for comparing a family of {k} estimates")
    return Emmeans(means, EmmGrid(con, cnotes, "estimate"))


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _opt_digits(est, se):
    """emmeans's .opt.dig: digits that resolve est ± 2 SE, row by row, at least 3."""
    best = 3
    for e, s in zip(est, se):
        x = np.array([e - 2 * s, e, e + 2 * s])
        mx = np.max(np.abs(x))
        if not np.isfinite(mx) or mx == 0:
            continue
        z = np.array([x.min(), x.max()]) / mx
        dz = P.zapsmall(np.array([z[1] - z[0], z[0], z[1]]), digits=8)[0]
        zz = 3 if dz <= 0 else int(P.r_round(1.51 - np.log10(dz)))
        best = max(best, zz)
    return best


def _print_emm(table, est_col):
    """emmeans's print.summary_emm: numbers zapped, df rounded to 2 decimals, t ratios
    to 3 and p-values to 4 (``<.0001``), the other numeric columns formatted together
    with the digits that resolve each estimate ± 2 SE (emmeans's opt.digits)."""
    digits = _opt_digits(table[est_col].to_numpy(), table["SE"].to_numpy())
    cols, left = {}, {}
    for c in table.columns:
        v = table[c]
        if not pd.api.types.is_numeric_dtype(v):
            cols[c], left[c] = [str(x) for x in v], True
            continue
        x = P.zapsmall(v.to_numpy(dtype=float))
        left[c] = False
        if c == "df":
            cols[c] = P.format_num(P.r_round(x, 2), digits=digits)
        elif c == "t.ratio":
            cols[c] = P.format_num(P.r_round(x, 3), digits=15, nsmall=3)
        elif c == "p.value":
            f = P.format_num(P.r_round(x, 4), digits=15, nsmall=4)
            cols[c] = ["<.0001" if s.strip() == "0.0000" else s for s in f]
        else:
            cols[c] = P.format_num(x, digits=digits)
    lines = []
    widths = {c: max([len(c)] + [len(s) for s in cols[c]]) for c in cols}
    # factor columns left-justified (header too), numbers right-justified
    lines.append(" " + " ".join(c.ljust(widths[c]) if left[c] else c.rjust(widths[c])
                                for c in cols))
    for i in range(len(table)):
        lines.append(" " + " ".join(cols[c][i].ljust(widths[c]) if left[c]
                                    else cols[c][i].strip().rjust(widths[c]) for c in cols))
    return "\n".join(lines)
