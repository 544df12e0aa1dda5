"""Stage 6: analysis-of-variance tables.

* ``anova(m1, m2, ...)``: likelihood ratio tests of nested models, printed as
  lme4's ``anova.merMod`` (models sorted by their number of parameters,
  REML fits refitted by ML unless ``refit=False``).
* ``anova(fit)``: lmerTest's type III (or type I) F table with Satterthwaite's
  or Kenward-Roger's denominator df (Kuznetsova et al. 2017, J. Stat. Softw.
  82(13), sec. 3.3).  Type III hypotheses for treatment-coded models follow
  lmerTest's construction: each term's hypothesis is the projection of its
  full-rank ("all levels") parametrization on the model's coefficients, made
  orthogonal to the terms that contain it (SAS's type III, Goodnight 1980).
"""

import inspect
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from . import printing as P
from .call import bound_name
from .design import term_matrix
from .errors import LmmError, message
from .fit import FitBase
from .inference import contestMD
from .transforms import Factor

REFIT_MESSAGE = "refitting model(s) with ML (instead of REML)"


class AnovaTable:
    """A printed R anova table: ``heading`` lines, then ``table`` (a DataFrame)."""

    def __init__(self, table, heading):
        self.table = table
        self.heading = list(heading)

    def __str__(self):
        return "\n".join(self.heading + [print_anova(self.table)]) + "\n"

    def __repr__(self):
        return str(self)

    def _repr_html_(self):
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


def print_anova(table, digits=5):
    """R's ``print.anova``: printCoefmat with na.print = "", statistics in
    columns named ``* value``/``F``/``Chisq``, no zapping of ``*Df`` columns."""
    cn = [str(c) for c in table.columns]
    nc = len(cn)
    has_p = cn[-1].startswith("Pr(") or cn[-1].startswith("P(")
    zap = list(range(nc - 1 if has_p else nc))
    tst = [i for i, c in enumerate(cn) if c[1:7] == " value"]
    tst += [i for i, c in enumerate(cn) if c in ("F", "Cp", "Chisq")]
    zap = [i for i in zap if i not in tst]
    dfc = [i for i, c in enumerate(cn) if c.endswith("Df")]
    zap = [i for i in zap if i not in dfc]
    return P.print_coefmat(table, digits=digits, has_pvalue=has_p, p_values=has_p,
                           cs_ind=(), zap_ind=zap, tst_ind=tst, na_print="")


# --------------------------------------------------------------------------
def anova(*models, refit=True, model_names=None, type="III", ddf="Satterthwaite",
          boundary=False):
    """ANOVA tables as R: LRTs of several models, or an F table of one.

    Parameters
    ----------
    *models : LmerFit (and LmFit)
        One lmer fit: lmerTest's F table per fixed-effects term.  Two or
        more: lme4's likelihood ratio table (each model tested against the
        previous one in order of increasing number of parameters).
    refit : bool
        Refit REML fits by ML before comparing (lme4's default, needed when
        the fixed effects differ).  ``refit=False`` compares REML criteria,
        valid only for models with the same fixed effects.
    boundary : bool
        With ``refit=False``: add the column ``Pr(mix)``, the boundary-corrected
        p-value where two consecutive models differ by one variance component
        (50:50 χ²₀:χ²₁) or by one random slope with its covariances (50:50
        χ²_q:χ²_{q+1}); NaN elsewhere (see :func:`boundary_pvalue`). Off by
        default, so the table prints as lme4's.
    model_names : list of str, optional
        Row names; by default the caller's variable names of the models.
    type : {"III", "II", "I", 3, 2, 1}
        Type of the F table of a single model.
    ddf : {"Satterthwaite", "Kenward-Roger"}
        Denominator df method of the F table of a single model.

    Returns
    -------
    AnovaTable
        ``str()`` prints as R; ``.table`` is the DataFrame.
    """
    if not models:
        raise LmmError("anova() needs at least one fitted model")
    for m in models:
        if not isinstance(m, FitBase):
            raise LmmError(f"anova() takes lmer or lm fits, not {type_name(m)}")
    if len(models) == 1:
        if not models[0].mixed:
            raise LmmError("anova() of a single lm fit is not implemented; "
                           "pass two or more models to compare them")
        return single_anova(models[0], type=type, ddf=ddf)
    if not any(m.mixed for m in models):
        raise LmmError("anova() of lm fits only is not implemented: "
                       "include at least one lmer fit")
    if model_names is None:
        model_names = _caller_names(models)
    if len(model_names) != len(models):
        raise LmmError("model_names and the models have different lengths")
    return lrt_table(list(models), list(model_names), refit=refit, boundary=boundary)


def type_name(x):
    return type(x).__name__


def _caller_names(models, depth=2):
    """The caller's variable names of the models (R's deparse(substitute(...)))."""
    frame = inspect.currentframe()
    for _ in range(depth):
        frame = frame.f_back if frame is not None else None
    try:
        names = [bound_name(frame, m) for m in models]
    finally:
        del frame
    if any(n is None for n in names) or len(set(names)) < len(names):
        warnings.warn("failed to find model names, assigning generic names", stacklevel=3)
        names = [f"MODEL{i + 1}" for i in range(len(models))]
    return names


def lrt_table(models, names, refit=True, boundary=False):
    """lme4's ``anova.merMod`` for two or more models.

    Refitting REML fits by ML is announced as lme4 does, with a message on
    stderr (``errors.message``; silence it through the ``"lmmlite"`` logger).
    """
    nobs = [m.nobs for m in models]
    if len(set(nobs)) > 1:
        raise LmmError("models were not all fitted to the same size of dataset "
                       f"(numbers of observations: {', '.join(map(str, nobs))})")
    first = models[0]
    for m, nm in zip(models[1:], names[1:]):
        if not _same_data(first, m):
            raise LmmError(f"all models must be fit to the same data object: {names[0]} uses "
                           f"'{first.data_name}', {nm} uses '{m.data_name}'")
    reml = [m.mixed and m.REML for m in models]
    if refit:
        if any(reml):
            message(REFIT_MESSAGE)
        models = [m.refit(REML=False) if r else m for m, r in zip(models, reml)]
    elif any(reml):
        if not all(reml):
            lm_ = [nm for m, nm in zip(models, names) if not m.mixed]
            if lm_:
                raise LmmError(f"cannot compare the REML criterion of an lmer fit with the "
                               f"log-likelihood of lm fit(s) {', '.join(lm_)}: use refit=True")
            warnings.warn("some models fit with REML = TRUE, some not", stacklevel=3)
    npar = np.array([m.npar for m in models], dtype=float)
    order = np.argsort(npar, kind="stable")
    models = [models[i] for i in order]
    names = [names[i] for i in order]
    npar = npar[order]
    llk = np.array([m.loglik for m in models], dtype=float)
    aic = -2 * llk + 2 * npar
    bic = -2 * llk + np.log(models[0].nobs) * npar
    chisq = np.concatenate([[np.nan], 2 * np.maximum(0, np.diff(llk))])
    dfc = np.concatenate([[np.nan], np.diff(npar)])
    with np.errstate(invalid="ignore"):
        pv = np.where(dfc == 0, np.nan, stats.chi2.sf(chisq, np.where(dfc > 0, dfc, np.nan)))
    pv[0] = np.nan
    table = pd.DataFrame({"npar": npar, "AIC": aic, "BIC": bic, "logLik": llk,
                          "deviance": -2 * llk, "Chisq": chisq, "Df": dfc,
                          "Pr(>Chisq)": pv}, index=names)
    if boundary and not refit:
        mix = [np.nan] + [boundary_pvalue(a, b, x) for a, b, x in
                          zip(models[:-1], models[1:], chisq[1:])]
        if not np.all(np.isnan(mix)):
            table["Pr(mix)"] = mix
    heading = [f"Data: {models[0].data_name}", "Models:"]
    heading += [f"{nm}: {m.formula}" for nm, m in zip(names, models)]
    return AnovaTable(table, heading)


def _random_layout(fit):
    """The random terms as (grouping factor, column names) pairs ([] for an lm fit)."""
    # a:b and b:a are one grouping factor
    return [(frozenset(b.group.split(":")), tuple(b.cnames))
            for b in getattr(fit, "blocks", None) or []]


def boundary_pvalue(small, large, chisq):
    """p-value of the LRT of a variance component on the boundary, or NaN where not valid.

    Valid (Self & Liang 1987, J. Am. Stat. Assoc. 82, 605-610; Stram & Lee 1994,
    Biometrics 50, 1171-1177) when the models have the same fixed effects and

    * ``large`` adds one scalar random term, e.g. ``(1 | g)``: the LRT is a 50:50
      mixture of χ²₀ and χ²₁, p = P(χ²₁ > x) / 2;
    * ``large`` adds one column, with its covariances, to a term of q columns of
      ``small``, e.g. ``(1 | g)`` -> ``(1 + x | g)`` (q = 1): a 50:50 mixture of
      χ²_q and χ²_{q+1}.

    Other differences (two variances at once, a fixed effect) give NaN: their null
    distribution is another mixture (or χ²), which this column does not claim.
    """
    if list(small.fixef.index) != list(large.fixef.index) or not np.isfinite(chisq):
        return np.nan
    a, b = _random_layout(small), _random_layout(large)
    extra = list(b)
    for t in a:
        if t in extra:
            extra.remove(t)
    missing = [t for t in a if t not in b]
    q = None
    if not missing and len(extra) == 1 and len(extra[0][1]) == 1:
        q = 0
    elif len(missing) == 1 and len(extra) == 1:
        (g0, c0), (g1, c1) = missing[0], extra[0]
        if g0 == g1 and set(c0) < set(c1) and len(c1) == len(c0) + 1:
            q = len(c0)
    if q is None or large.npar - small.npar != q + 1:
        return np.nan
    low = (1.0 if chisq <= 0 else 0.0) if q == 0 else stats.chi2.sf(chisq, q)
    return 0.5 * low + 0.5 * stats.chi2.sf(chisq, q + 1)


def _same_data(a, b):
    if a.data_name != b.data_name:
        return False
    da, db = getattr(a, "data", None), getattr(b, "data", None)
    if da is None or db is None or da is db:
        return True
    try:
        return da.shape == db.shape and da.equals(db)
    except Exception:
        return False


# --------------------------------------------------------------------------
# single-model F tables (lmerTest)
def _term_columns(fit):
    """Map each fixed-effects term label to the indices of its (kept) X columns (R's assign)."""
    return fit.design.term_columns()


def _doolittle(x, eps=1e-6):
    """LU decomposition without pivoting, with small entries set to 0 (lmerTest's doolittle)."""
    n = x.shape[0]
    L, U = np.eye(n), np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            U[i, j] = x[i, j] - L[i, :i] @ U[:i, j]
        for j in range(i + 1, n):
            v = x[j, i] - L[j, :i] @ U[:i, i]
            L[j, i] = 0.0 if abs(U[i, i]) < eps else v / U[i, i]
    L[np.abs(L) < eps] = 0
    U[np.abs(U) < eps] = 0
    return L, U


def contrasts_type1(fit):
    """Sequential (type I) hypotheses: rows of the Doolittle factor of X'X per term."""
    X = fit.design.X
    p = X.shape[1]
    L = np.eye(1) if p == 1 else _doolittle(X.T @ X)[0].T
    cols = _term_columns(fit)
    return {t: L[c] for t, c in cols.items()}


def containment(fit):
    """contains(small, big): term ``big`` contains ``small`` (more factors, the same
    numeric variables), lmerTest's term_contain."""
    spec, frame = fit.spec, fit.frame
    numeric = {v for t in spec.terms for v in t if not frame.is_factor(v)}
    tvars = {":".join(t): set(t) for t in spec.terms}

    def contains(small, big):
        a, b = tvars[small], tvars[big]
        return a < b and (a & numeric) == (b & numeric)
    return contains


def contrasts_marginal(fit):
    """Each term's own coefficients (identity rows): the hypotheses of drop1."""
    p = len(fit.fixef)
    if p <= 1 or len(fit.spec.terms) <= 1:
        return contrasts_type1(fit)
    eye = np.eye(p)
    return {t: eye[c] for t, c in _term_columns(fit).items()}


def contrasts_type2(fit):
    """Type II hypotheses per term, as lmerTest (SAS's type II).

    A term not contained in another is tested on its own coefficients; for
    the others, X's columns are reordered so the term and the terms containing
    it come last, and the term's rows of the Doolittle factor of X'X (in the
    original column order) are its hypothesis: adjusted for every term that
    does not contain it.
    """
    cmap = _term_columns(fit)
    terms = list(cmap)
    if len(fit.fixef) <= 1 or len(terms) <= 1:
        return contrasts_type1(fit)
    contains = containment(fit)
    X = fit.design.X
    p = X.shape[1]
    out = contrasts_marginal(fit)
    for term in terms:
        cont = [t for t in terms if contains(term, t)]
        if not cont:
            continue
        last = list(cmap[term]) + [c for t in cont for c in cmap[t]]
        order = [c for c in range(p) if c not in last] + last
        Lc = _doolittle(X[:, order].T @ X[:, order])[0].T
        rows = [k for k, c in enumerate(order) if c in cmap[term]]
        L = np.zeros((len(rows), p))
        L[:, order] = Lc[rows]
        out[term] = L
    return out


def drop_scope(fit):
    """The terms that can be dropped without breaking marginality (R's drop.scope)."""
    terms = [set(t) for t in fit.spec.terms]
    return [":".join(t) for t, a in zip(fit.spec.terms, terms)
            if not any(a < b for b in terms)]


def drop1(fit, ddf="Satterthwaite"):
    """lmerTest's ``drop1``: an F test of each term that can be dropped.

    Each marginal term (R's drop.scope) is tested on its own coefficients
    (Satterthwaite's or Kenward-Roger's df); printed as lmerTest.
    """
    if not getattr(fit, "mixed", False):
        raise LmmError("drop1() needs an lmer fit")
    scope = drop_scope(fit)
    Ls = contrasts_marginal(fit)
    table = _ftable(fit, {t: Ls[t] for t in scope}, ddf)
    method = "Satterthwaite's" if ddf == "Satterthwaite" else "Kenward-Roger's"
    return AnovaTable(table, [f"Single term deletions using {method} method:", "", "Model:",
                              fit.formula])


def contrasts_type3(fit):
    """Type III hypotheses per term, as lmerTest for treatment-coded models.

    The full-rank X is expressed through the over-parametrized design rdX
    (all levels of every factor in every term): L = pinv(X) rdX, and a term's
    hypothesis is made orthogonal to the hypotheses of the terms containing
    it (same numeric variables, more factors), highest order first.
    """
    spec = fit.spec
    X = fit.design.X
    terms = [":".join(t) for t in spec.terms]
    if X.shape[1] <= 1 or len(terms) <= 1:
        return contrasts_type1(fit)
    if any(k != "contr.treatment" for k in fit.design.contrasts.values()):
        # lmerTest: the hypotheses of the treatment-coded model, mapped to the
        # model's own coding by pinv(X_treatment) X
        tview = _TreatmentView(fit)
        mapping = P.zapsmall(np.linalg.pinv(tview.design.X) @ X)
        return {t: L @ mapping for t, L in contrasts_type3(tview).items()}
    frame = fit.frame
    rd_cols, rd_names = [], []
    if spec.intercept:
        rd_cols.append(np.ones((frame.nobs, 1)))
        rd_names.append("(Intercept)")
    for t in spec.terms:
        M, nm, _, _ = term_matrix(False, [t], frame)
        rd_cols.append(M)
        rd_names += nm
    rdX = np.hstack(rd_cols)
    L = P.zapsmall((np.linalg.pinv(X) @ rdX).T)          # rows: rdX columns
    cmap = _term_columns(fit)
    contains = containment(fit)

    order = sorted(range(len(terms)), key=lambda k: -len(spec.terms[k]))
    for k in order:
        term = terms[k]
        cont = [t for t in terms if contains(term, t)]
        if cont and cmap[term]:
            xc = L[:, [c for t in cont for c in cmap[t]]]
            y = L[:, cmap[term]]
            coef, *_ = np.linalg.lstsq(xc, y, rcond=None)
            L[:, cmap[term]] = P.zapsmall(y - xc @ coef)
    xnames = list(fit.fixef.index)
    rowpos = {n: i for i, n in enumerate(rd_names)}
    L = L[[rowpos[n] for n in xnames]]                   # p x p
    out = {}
    for term in terms:
        Lt = L[:, cmap[term]].T
        out[term] = Lt[np.abs(Lt).sum(axis=1) > 1e-8]
    return out


class _TreatmentView:
    """The fit's fixed part coded with treatment contrasts for every factor (what
    contrasts_type3 needs: spec, frame, design.X, design.term_columns(), fixef names)."""

    def __init__(self, fit):
        import dataclasses
        from types import SimpleNamespace
        frame = fit.frame
        cols = {v: (dataclasses.replace(c, contrasts="contr.treatment", from_call=False)
                    if isinstance(c, Factor) else c) for v, c in frame.columns.items()}
        self.frame = dataclasses.replace(frame, columns=cols)
        self.spec = fit.spec
        X, names, assign, _ = term_matrix(fit.spec.intercept, fit.spec.terms, self.frame)
        keep = list(fit.design.keep)
        X, names, assign = X[:, keep], [names[k] for k in keep], [assign[k] for k in keep]
        tc = {":".join(t): [i for i, a in enumerate(assign) if a == k + 1]
              for k, t in enumerate(fit.spec.terms)}
        self.design = SimpleNamespace(X=X, term_columns=lambda: tc, contrasts={})
        self.fixef = pd.Series(np.zeros(len(names)), index=names)


def single_anova(fit, type="III", ddf="Satterthwaite"):
    """lmerTest's ``anova(fit)``: one F test per fixed-effects term."""
    t = str(type).upper()
    if t in ("III", "3"):
        Ls, title = contrasts_type3(fit), "Type III"
    elif t in ("II", "2"):
        Ls, title = contrasts_type2(fit), "Type II"
    elif t in ("I", "1"):
        Ls, title = contrasts_type1(fit), "Type I"
    else:
        raise LmmError(f"type must be 'III' (3), 'II' (2) or 'I' (1), not {type!r}")
    table = _ftable(fit, Ls, ddf)
    method = "Satterthwaite's" if ddf == "Satterthwaite" else "Kenward-Roger's"
    return AnovaTable(table, [f"{title} Analysis of Variance Table with {method} method"])


def _ftable(fit, Ls, ddf):
    """One contestMD row per term hypothesis."""
    if ddf not in ("Satterthwaite", "Kenward-Roger"):
        raise LmmError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger', not {ddf!r}")
    rows = {}
    for term, L in Ls.items():
        if L.shape[0] == 0:
            rows[term] = dict.fromkeys(["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value",
                                        "Pr(>F)"], np.nan)
        else:
            rows[term] = contestMD(fit, L, ddf=ddf)
    table = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value",
                                            "Pr(>F)"])
    return table
