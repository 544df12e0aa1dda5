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
def anova(*models, refit=True, model_names=None, type="III", ddf="Satterthwaite"):
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
    model_names : list of str, optional
        Row names; by default the caller's variable names of the models.
    type : {"III", "I", 3, 1}
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
    return lrt_table(list(models), list(model_names), refit=refit)


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


def lrt_table(models, names, refit=True):
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
    heading = [f"Data: {models[0].data_name}", "Models:"]
    heading += [f"{nm}: {m.formula}" for nm, m in zip(names, models)]
    return AnovaTable(table, heading)


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
    numeric = {v for t in spec.terms for v in t if not frame.is_factor(v)}
    tvars = {":".join(t): set(t) for t in spec.terms}

    def contains(small, big):
        a, b = tvars[small], tvars[big]
        return a < b and (a & numeric) == (b & numeric)

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


def single_anova(fit, type="III", ddf="Satterthwaite"):
    """lmerTest's ``anova(fit)``: one F test per fixed-effects term."""
    t = str(type).upper()
    if t in ("III", "3"):
        Ls, title = contrasts_type3(fit), "Type III"
    elif t in ("I", "1"):
        Ls, title = contrasts_type1(fit), "Type I"
    else:
        raise LmmError(f"type must be 'III' (3) or 'I' (1), not {type!r}")
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
    method = "Satterthwaite's" if ddf == "Satterthwaite" else "Kenward-Roger's"
    return AnovaTable(table, [f"{title} Analysis of Variance Table with {method} method"])
