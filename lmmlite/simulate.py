"""Simulation from a fitted lmer or glmer model and the parametric bootstrap test of two models.

* :func:`simulate`: responses from the fitted model, as lme4's ``simulate``:
  y* = X β̂ (+ offset) + Σ_k Z_k b*_k + ε*, with ε*_i ~ N(0, σ̂²/w_i) and, for
  the random terms not conditioned on, new effects b*_k = σ̂ T_k u, u ~ N(0, I)
  (so b*_k ~ N(0, Σ_k)); terms that ``re_form`` names keep their conditional
  modes b̂_k.  For glmer (σ = 1) the same b*_k give μ* = g⁻¹(X β̂ + offset +
  Σ_k Z_k b*_k), and the response is drawn from the family given μ*: Poisson
  counts, or binomial successes out of the prior weights times the trials,
  returned in the response's form as lme4's family ``simulate`` does.
* :func:`pbmodcomp`: pbkrtest's ``PBmodcomp`` (Halekoh & Højsgaard 2014,
  J. Stat. Softw. 59(9), section 4). Both models are refitted by ML; nsim
  responses are simulated from the small model's ML fit, both models are
  refitted to each through the model's one optimizer path
  (``fit.model.refit(y=...).optimize()``), and the bootstrap p-value is
  pbkrtest's p = (1 + #{LRT* > LRT}) / (1 + #{LRT* > 0}): the simulated LRTs at
  or below 0 drop out of both counts. For a variance at the boundary about half
  of the refits of the large model end at the small one (LRT* = 0 up to
  rounding); an LRT* below ``ZERO_LRT`` counts as 0, so that rounding noise
  does not decide which of them count.
"""

import re
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from .deviance import Zb
from .errors import LmmError, message, progress_bar
from .threads import blas_single_thread
from .predict import _selected_columns
from .printing import print_coefmat
from .transforms import Factor, Matrix

SLOW = 5.0   # seconds: a bootstrap expected to take longer shows a progress bar
ZERO_LRT = 1e-6   # simulated LRTs below this are boundary refits: 0


def new_effects(fit, rng, keep=None):
    """Random effects b*_k = σ T_k u, u ~ N(0, I), per block (σ = 1 for glmer).

    ``keep``: per block, a boolean mask of the columns whose conditional modes b̂
    are kept instead (None: draw every random effect anew).
    """
    bs = []
    for k, (b, T) in enumerate(zip(fit.blocks, fit.covariance.factors(fit.theta))):
        new = fit.sigma * rng.standard_normal((b.nlevels, b.p)) @ T.T
        if keep is not None and keep[k].any():
            new[:, keep[k]] = fit.b_blocks[k][:, keep[k]]
        bs.append(new)
    return bs


def _fixed_part(fit):
    d = fit.design
    return d.X @ fit.fixef.to_numpy() + (0.0 if d.offset is None else d.offset)


def draw_responses(fit, rng, keep=None):
    """One simulated response vector (the training rows) from an lmer ``fit``:
    Xβ̂ + offset + Zb* + ε*, ε*_i ~ N(0, σ̂²/w_i) (b* from :func:`new_effects`)."""
    d = fit.design
    eps = fit.sigma * rng.standard_normal(d.nobs)
    if d.weights is not None:
        eps = eps / np.sqrt(d.weights)
    return Zb(fit.blocks, new_effects(fit, rng, keep), start=_fixed_part(fit) + eps)


def draw_glmer_counts(fit, rng, keep=None):
    """One draw from a glmer ``fit`` on the training rows: μ* = g⁻¹(Xβ̂ + offset + Zb*)
    (b* from :func:`new_effects`), then Poisson(μ*) counts, or for the binomial
    Binomial(m_i, μ*_i) successes out of m_i = the prior weights times the trials
    (lme4's binomial ``simulate``). Returns (counts, m), m None for the Poisson."""
    mu = fit.family.linkinv(Zb(fit.blocks, new_effects(fit, rng, keep), start=_fixed_part(fit)))
    if fit.family.name == "poisson":
        return rng.poisson(mu), None
    m = fit.model.wt
    if np.any(np.abs(m - np.round(m)) > 1e-8):
        raise LmmError("cannot simulate from non-integer prior weights (the binomial "
                       "trials times the weights must be whole numbers)")
    m = np.round(m).astype(np.int64)
    return rng.binomial(m, np.clip(mu, 0.0, 1.0)), m


def simulate(fit, nsim=1, seed=None, re_form=None):
    """Responses simulated from a fitted model, as lme4's ``simulate``.

    Parameters
    ----------
    fit : LmerFit or GlmerFit
    nsim : int
        Number of simulated responses.
    seed : int or numpy.random.Generator, optional
        numpy's ``default_rng(seed)``: the same seed gives the same responses.
    re_form : None, "~0", "NA" or random terms such as "~(1 | Subject)"
        The random terms to condition on. None (lme4's default, ``re.form = NA``),
        "~0" or "NA": none, every random effect is drawn anew. ``"~."``: all of them
        (the conditional modes b̂ are kept and only the residuals, or for glmer the
        responses given μ̂, are drawn).

    Returns
    -------
    DataFrame
        One column per simulation (``sim_1``, ...), one row per observation used.
        For glmer, the response in its own form, as lme4: Poisson counts
        (integers); for a binomial ``cbind(s, f)`` response a pair of columns
        per simulation (``sim_1`` has the columns successes and failures, named
        as R names them: the argument if it is a plain name, else ""); for a
        factor response a categorical with its levels; otherwise proportions of
        the prior weights (0/1 for a binary or logical response).
    """
    if not getattr(fit, "mixed", False):
        raise LmmError("simulate() needs an lmer or glmer fit")
    if int(nsim) != nsim or nsim < 1:
        raise LmmError(f"nsim must be a positive integer, not {nsim!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    keep = _keep_masks(fit, re_form)
    names = [f"sim_{s + 1}" for s in range(int(nsim))]
    index = fit.frame.row_index
    if getattr(fit, "family", None) is None:
        return pd.DataFrame({nm: draw_responses(fit, rng, keep) for nm in names}, index=index)
    draws = [draw_glmer_counts(fit, rng, keep) for _ in names]
    return _glmer_frame(fit, names, draws, index)


def _glmer_frame(fit, names, draws, index):
    """The simulated responses in the form of the model's response (see :func:`simulate`)."""
    response = fit.design.response
    if fit.family.name == "poisson":
        return pd.DataFrame({nm: y for nm, (y, _) in zip(names, draws)}, index=index)
    if isinstance(response, Matrix):
        cols = [c if re.fullmatch(r"[A-Za-z.][A-Za-z0-9._]*", c) else ""
                for c in response.colnames]
        data = {(nm, c): v for nm, (y, m) in zip(names, draws) for c, v in zip(cols, (y, m - y))}
        return pd.DataFrame(data, index=index)
    levels = list(response.values.categories) if isinstance(response, Factor) else []
    # a factor response gives a factor; a logical one (categories False, True) 0/1, as R's
    if levels and not all(isinstance(v, (bool, np.bool_)) for v in levels):
        return pd.DataFrame({nm: pd.Categorical.from_codes(y, levels[:2])
                             for nm, (y, _) in zip(names, draws)}, index=index)
    return pd.DataFrame({nm: y / m for nm, (y, m) in zip(names, draws)}, index=index)


def _keep_masks(fit, re_form):
    if re_form is None:
        return None
    if str(re_form).replace(" ", "") == "~.":
        return _selected_columns(fit, None)
    return _selected_columns(fit, re_form)


class Progress:
    """A progress bar on stderr, only when the loop is expected to be slow.

    The first iteration is timed; when ``total`` of them would take more than
    ``SLOW`` seconds the bar is drawn (as lme4's bootMer draws one).
    """

    def __init__(self, total, show=None, width=50):
        self.total, self.show, self.width = total, show, width
        self.t0 = time.perf_counter()

    def update(self, i):
        if self.show is None and i == 1:
            self.show = (time.perf_counter() - self.t0) * self.total > SLOW
        step = max(1, self.total // self.width)
        if self.show and (i % step == 0 or i == self.total):
            progress_bar(i, self.total, self.width)


def refit_deviance(model, y, theta0, method):
    """ML deviance of ``model`` refitted to response ``y`` (NaN when the refit fails)."""
    try:
        m = model.refit(y=y, REML=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = m.optimize(method, theta0=theta0, checks=False)
        value = m.deviance(opt.theta)
        return value if np.isfinite(value) else np.nan
    except (np.linalg.LinAlgError, ValueError, FloatingPointError, LmmError):
        return np.nan


class PBModComp:
    """pbkrtest's PBmodcomp result: ``test`` (rows LRT and PBtest) and the simulated LRTs."""

    def __init__(self, test, ref, nfail, large, small, seconds):
        self.test, self.ref, self.nfail = test, ref, nfail
        self.large, self.small, self.seconds = large, small, seconds

    def __str__(self):
        """As pbkrtest prints it: extremes and used samples count the positive LRT*."""
        ref = self.ref[np.isfinite(self.ref)]
        pos = ref[ref > ZERO_LRT]
        extremes = int(np.sum(pos > self.test.loc["LRT", "stat"]))
        lines = [f"Bootstrap test; time: {self.seconds:.2f} sec; samples: {len(self.ref)}; "
                 f"extremes: {extremes};"]
        if len(pos) < len(self.ref):
            lines.append(f"Requested samples: {len(self.ref)} Used samples: {len(pos)} "
                         f"Extremes: {extremes}")
        if self.nfail:
            lines.append(f"Failed refits (left out): {self.nfail}")
        lines += [f"large : {self.large}", self.small,
                  print_coefmat(self.test, digits=5, has_pvalue=True, cs_ind=(0,),
                                tst_ind=(0,), na_print="")]
        return "\n".join(lines) + "\n"

    __repr__ = __str__


def pbmodcomp(large, small, nsim=1000, seed=None, progress=None):
    """Parametric bootstrap comparison of two nested lmer fits, as pbkrtest's PBmodcomp.

    Parameters
    ----------
    large, small : LmerFit
        Nested models fitted to the same rows (REML fits are refitted by ML).
    nsim : int
        Number of simulated data sets. The Monte Carlo standard error of the
        p-value is about sqrt(p (1 - p) / nsim).
    seed : int, optional
        Seed of numpy's ``default_rng``: the same seed gives the same p-value.
    progress : bool or None
        Progress bar on stderr; None: only when the refits will take more than
        a few seconds.

    Returns
    -------
    PBModComp
        ``.test``: DataFrame with rows LRT (χ² p-value) and PBtest (bootstrap
        p-value), columns stat, df, p.value; ``.ref`` the simulated LRTs
        (NaN for a failed refit); ``.nfail`` the number of failed refits.
    """
    for m in (large, small):
        if not getattr(m, "mixed", False):
            raise LmmError("pbmodcomp() compares two lmer fits")
    if large.nobs != small.nobs:
        raise LmmError(f"the models were fitted to different numbers of observations "
                       f"({large.nobs} and {small.nobs})")
    t0 = time.perf_counter()
    L = large.refit(REML=False) if large.REML else large
    S = small.refit(REML=False) if small.REML else small
    if L.npar < S.npar:
        L, S = S, L
    if not np.allclose(L.design.y, S.design.y):
        raise LmmError("the models were not fitted to the same response")
    tobs = S.deviance - L.deviance
    df = L.npar - S.npar
    rng = np.random.default_rng(seed)
    ref = np.full(int(nsim), np.nan)
    bar = Progress(int(nsim), progress)
    with blas_single_thread():
        for s in range(int(nsim)):
            y = draw_responses(S, rng)
            d_small = refit_deviance(S.model, y, S.theta, S.opt.method)
            d_large = refit_deviance(L.model, y, L.theta, L.opt.method)
            ref[s] = d_small - d_large
            bar.update(s + 1)
    nfail = int(np.sum(~np.isfinite(ref)))
    if nfail:
        message(f"pbmodcomp: {nfail} of {int(nsim)} bootstrap refits failed and were left out")
    ok = ref[np.isfinite(ref)]
    pos = ok[ok > ZERO_LRT]
    p_pb = (1 + np.sum(pos > tobs)) / (1 + len(pos))
    test = pd.DataFrame({"stat": [tobs, tobs], "df": [float(df), np.nan],
                         "p.value": [stats.chi2.sf(max(tobs, 0.0), df), p_pb]},
                        index=["LRT", "PBtest"])
    return PBModComp(test, ref, nfail, L.formula, S.formula, time.perf_counter() - t0)
