"""lmerTest's ``ranova``: likelihood ratio tests of the random-effect terms.

Each random term of the formula is reduced in turn, all else unchanged, and the
reduced model is refitted with the same criterion (REML or ML) as the fit:

* ``(1 | g)`` is removed (row ``(1 | g)``);
* a term with more than one part, ``(1 + x | g)``, loses each part but the
  intercept in turn (row ``x in (1 + x | g)``: ``(1 | g)`` remains; its Df counts
  the variance and the covariances that go);
* a single slope ``(0 + x | g)`` becomes ``(1 | g)`` (row ``x in (0 + x | g)``).

A reduced model identical to another term is merged with it (as R's formula
does with a duplicated term). When the last random term goes, the reduced model
is a linear model and its log-likelihood (REML: R's ``logLik(lm, REML = TRUE)``)
is used. LRT = 2 (ℓ_full - ℓ_reduced) on Df = the difference in parameters, with
a χ² p-value: conservative for a variance at the boundary (see
:func:`lmmlite.anova.anova`'s mixture column and :func:`lmmlite.simulate.pbmodcomp`).
"""

import numpy as np
import pandas as pd
from scipy import stats

from .anova import AnovaTable, print_anova
from .errors import LmmError
from .lm import lm
from .lmer import lmer


def random_text(rt):
    """A random term as R deparses it: ``(1 | g)``, ``(Days | Subject)``, ``(0 + x | g)``."""
    parts = [":".join(t) for t in rt.terms]
    if not parts:
        lhs = "1" if rt.intercept else "0"
    elif rt.intercept:
        lhs = " + ".join(parts)
    else:
        lhs = " + ".join(["0"] + parts)
    return f"({lhs} | {rt.group_name})"


def _formula(spec, random):
    """R's deparse of ``terms(formula)``: terms by order, a bar term of order 1."""
    fixed = [(len(t), ":".join(t)) for t in spec.terms]
    labels = [lab for _, lab in sorted(fixed + [(1, random_text(r)) for r in random],
                                       key=lambda x: x[0])]
    labels += list(spec.offsets)
    if not spec.intercept:
        labels = ["-1"] + labels
    rhs = " + ".join(labels) if labels else "1"      # y ~ (1 | g): the intercept implicit
    return f"{spec.response} ~ {rhs}"


def _reductions(random):
    """(row label, reduced list of random terms) for each way lmerTest reduces a term."""
    out = []
    for k, rt in enumerate(random):
        others = random[:k] + random[k + 1:]
        text = random_text(rt)
        if not rt.terms:                                # (1 | g): remove it
            out.append((text, others))
            continue
        for j, part in enumerate(rt.terms):
            rest = rt.terms[:j] + rt.terms[j + 1:]
            if not rest and not rt.intercept:           # (0 + x | g) -> (1 | g)
                new = type(rt)(True, (), rt.group, f"(1 | {rt.group_name})")
            else:
                new = type(rt)(rt.intercept, rest, rt.group, "")
            kept = others[:k] + [new] + others[k:]
            out.append((f"{':'.join(part)} in {text}", _dedup(kept)))
    return out


def _dedup(random):
    seen, out = set(), []
    for rt in random:
        key = (rt.intercept, rt.terms, rt.group)
        if key not in seen:
            seen.add(key)
            out.append(rt)
    return out


def _refit(fit, random):
    """The fit's model with other random terms, fitted by the same criterion."""
    formula = _formula(fit.spec, random)
    w, off = fit.call.weights, fit.call.offset
    if random:
        return lmer(formula, fit.data, REML=fit.REML, weights=w, offset=off,
                    contrasts=fit.design.contrasts_arg, optimizer=fit.opt.method)
    return lm(formula, fit.data, weights=w, offset=off, contrasts=fit.design.contrasts_arg)


def lm_loglik(lmfit, REML):
    """R's ``logLik(lm, REML)``: the REML version subtracts log|R| of X's QR and uses n - p."""
    if not REML:
        return float(lmfit.loglik)
    d = lmfit.design
    w = np.ones(len(d.y)) if d.weights is None else d.weights
    n, p = len(d.y), d.X.shape[1]
    N = n - p
    ll = 0.5 * (np.sum(np.log(w)) - N * (np.log(2 * np.pi) + 1 - np.log(N) + np.log(lmfit.rss)))
    if p:
        R = np.linalg.qr(d.X * np.sqrt(w)[:, None], mode="r")
        ll -= np.sum(np.log(np.abs(np.diag(R))))
    return float(ll)


def _loglik(m, REML):
    return m.loglik if m.mixed else lm_loglik(m, REML)


def ranova(fit, reduce_terms=True):
    """lmerTest's ``ranova``: one likelihood ratio test per random-effect term.

    Parameters
    ----------
    fit : LmerFit
    reduce_terms : bool
        Reduce ``(1 + x | g)`` to ``(1 | g)`` (True, lmerTest's default) or
        remove whole terms (False).

    Returns
    -------
    AnovaTable
        Rows ``<none>`` and one per reduction; columns npar, logLik, AIC, LRT,
        Df, Pr(>Chisq). ``str()`` prints as lmerTest.
    """
    if not getattr(fit, "mixed", False):
        raise LmmError("ranova() needs an lmer fit")
    if fit.data is None:
        raise LmmError("ranova() refits the model and needs the data it was fitted to")
    random = list(fit.spec.random)
    if reduce_terms:
        steps = _reductions(random)
    else:
        steps = [(random_text(rt), random[:k] + random[k + 1:]) for k, rt in enumerate(random)]
    rows = {"<none>": (fit.npar, fit.loglik)}
    for label, reduced in steps:
        m = _refit(fit, reduced)
        rows[label] = (m.npar, _loglik(m, fit.REML))
    npar = np.array([r[0] for r in rows.values()], dtype=float)
    ll = np.array([r[1] for r in rows.values()])
    lrt = 2 * (ll[0] - ll)
    df = npar[0] - npar
    lrt[0] = df[0] = np.nan
    with np.errstate(invalid="ignore"):
        p = stats.chi2.sf(lrt, df)
    table = pd.DataFrame({"npar": npar, "logLik": ll, "AIC": -2 * ll + 2 * npar,
                          "LRT": lrt, "Df": df, "Pr(>Chisq)": p}, index=list(rows))
    heading = ["ANOVA-like table for random-effects: Single term deletions", "", "Model:",
               _formula(fit.spec, random)]
    return AnovaTable(table, heading)
