"""glmer(): formula -> frame -> design -> response -> PIRLS/Laplace -> two-stage optimization.

As lme4's ``glmer`` (Bates et al. 2015, JSS 67(1); lme4's ``optimizeGlmer``):

1. nAGQ = 0 stage: θ by BOBYQA, with β and u solved jointly by PIRLS at each θ;
2. the Laplace (or adaptive Gauss-Hermite) objective over (θ, β) from there, u by PIRLS.

lme4 stops the second stage with Nelder-Mead at loose tolerances; lmmlite goes
on to the exact optimum, so its log-likelihood is never below lme4's: BOBYQA
(tolerances 1e-6 on both stages when Newton steps follow), then Newton steps
with lme4's ``deriv12`` finite-difference gradient and Hessian (step 1e-4; cross
terms from 2 evaluations instead of 4, ``rule="pairs"``), the last of which, at
the optimum, gives the standard errors and lme4's checks (isSingular on θ, checkConv on the gradient and
Hessian over (θ, β)). At a boundary, or where the Hessian is nearly singular or
a Newton step does not lower f, the rest is lmer's optimizer entry point
(restarts off the boundary, Newton steps with relative finite-difference steps),
then ``deriv12`` at its optimum.
"""

import warnings

import numpy as np
import scipy.linalg as sla

from .agq import AGQModel
from .design import build_design, check_scale
from .errors import LmmError, SingularFitWarning
from .family import as_family
from .formula import parse_formula
from .glmm import GlmerModel, check_model, deriv12
from .call import make_call
from .threads import blas_single_thread
from .optimize import (_at_bound, check_convergence, have_nlopt,
                       optimize_theta)
from .transforms import Factor, Matrix
from .glmer_fit import GlmerFit

HESSIAN_MAX_NOBS = 10_000   # lme4's calc.derivs default: derivatives only below this size
HESS_MAX = 1e6              # 1 / lme4's check.conv.hess tolerance
START_TOL = 1e-6            # BOBYQA's tolerances where Newton steps finish the job


def glm_response(design, family):
    """The response as the family takes it: (y, trials n, prior weights wt).

    Binomial: a 0/1 or logical vector, a factor (first level = failure, all
    others success), ``cbind(successes, failures)`` (y the proportion, wt the
    trials times any prior weights) or a proportion with ``weights=`` the trials
    (R's ``binomial()$initialize``). Poisson: non-negative counts.
    """
    value = design.response
    name = design.spec.response
    prior = np.ones(design.nobs) if design.weights is None else design.weights
    if family.name == "binomial":
        if isinstance(value, Matrix):
            if value.values.shape[1] != 2:
                raise LmmError(f"the binomial response {name} must have 2 columns "
                               "(successes, failures)")
            s, f = value.values[:, 0], value.values[:, 1]
            if np.any(s < 0) or np.any(f < 0):
                raise LmmError(f"counts must be nonnegative in {name}")
            trials = s + f
            y = np.where(trials > 0, s / np.where(trials > 0, trials, 1), 0.0)
            return y, trials, prior * trials
        if isinstance(value, Factor):
            y = (np.asarray(value.values.codes) != 0).astype(float)
        else:
            y = np.asarray(value, dtype=float)
            if np.any(y < 0) or np.any(y > 1):
                raise LmmError(f"the binomial response '{name}' must be 0/1, logical, a factor, "
                               "a proportion with weights= the trials, or cbind(successes, "
                               "failures); its values must be 0 <= y <= 1")
            m = prior * y
            if np.any(np.abs(m - np.round(m)) > 1e-3):
                warnings.warn("non-integer #successes in a binomial glm!", stacklevel=3)
        return y, np.ones(design.nobs), prior
    if isinstance(value, (Matrix, Factor)):
        raise LmmError(f"the {family.name} response '{name}' must be numeric counts")
    y = np.asarray(value, dtype=float)
    if np.any(y < 0):
        raise LmmError(f"negative values not allowed for the 'Poisson' family ('{name}')")
    return y, np.ones(design.nobs), prior


def glmer(formula, data, family="binomial", nAGQ=1, weights=None, offset=None,
          contrasts=None, optimizer="auto"):
    """Fit a generalized linear mixed model with lme4's formula syntax (lme4's ``glmer``).

    Parameters
    ----------
    formula : str
        e.g. ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"``; random
        terms and the fixed part as in :func:`lmmlite.lmer`.
    data : pandas.DataFrame
    family : "binomial", "poisson" or a family object
        ``lmmlite.binomial(link="logit" | "probit" | "cloglog")``,
        ``lmmlite.poisson()``.
    nAGQ : int
        1: the Laplace approximation (default); 0: lme4's faster nAGQ = 0 fit
        (β from PIRLS); >1 (up to 25): adaptive Gauss-Hermite quadrature, for
        a single scalar random-effects term.
    weights : str or array, optional
        Prior weights; for a binomial proportion, the number of trials.
    offset : str or array, optional
        Added to the linear predictor (as ``offset()`` in the formula).
    contrasts : dict, optional
        Contrasts per factor, as in :func:`lmmlite.lmer`.
    optimizer : {"auto", "bobyqa", "lbfgsb"}
        The optimizer entry point of lmer, used for both stages.

    Returns
    -------
    GlmerFit
    """
    call = make_call(data, weights, offset)
    fam = as_family(family)
    if not isinstance(nAGQ, (int, np.integer)) or nAGQ < 0 or nAGQ > 25:
        raise LmmError(f"nAGQ must be an integer from 0 to 25, not {nAGQ!r}")
    with blas_single_thread():
        spec = parse_formula(formula)
        if not spec.random:
            raise LmmError(f"no random effects terms specified in formula '{spec.formula}'")
        design = build_design(spec, data, weights, offset, contrasts, glm_response=True)
        check_model(design)
        check_scale(design.X)
        if nAGQ > 1 and (len(design.blocks) != 1 or design.blocks[0].p != 1):
            raise LmmError("nAGQ > 1 is only available for models with a single, "
                           "scalar random-effects term")
        y, n, wt = glm_response(design, fam)
        model = GlmerModel(design, fam, y, n, wt)
        if nAGQ > 1:
            model = AGQModel(design, fam, y, n, wt, nAGQ)
        stage1, stage2, hessian = fit_stages(model, nAGQ, optimizer)
    for msg in stage2.messages:
        if msg.startswith("boundary"):
            warnings.warn(msg, SingularFitWarning, stacklevel=2)
    fit = GlmerFit(model, stage1, stage2, hessian, nAGQ=nAGQ, data_name=call.data_name,
                   data=data)
    fit.call = call
    fit.weights_arg = call.texts.get("weights")
    fit.offset_arg = call.texts.get("offset")
    return fit


def fit_stages(model, nAGQ, optimizer="auto"):
    """lme4's two stages; returns (stage-1 result, stage-2 result, Hessian or None)."""
    k = model.ntheta
    lower0 = model.lower
    # stage 1 only gives stage 2 its start (which goes on to the exact optimum itself):
    # plain BOBYQA as lme4's, unless it is the fit (nAGQ = 0)
    method0 = "nloptwrap" if nAGQ > 0 and optimizer in ("auto", "bobyqa") and have_nlopt() \
        else optimizer
    opt0 = optimize_theta(model.objective0, model.covariance.start, lower0, method=method0,
                          below=model.covariance.below(), checks=False,
                          bobyqa_tol=START_TOL if nAGQ > 0 else None)
    state0 = model.state(opt0.theta)
    opt0.beta = state0.beta
    if nAGQ == 0:
        # lme4 computes no derivatives for an nAGQ = 0 fit: only the singularity check
        if opt0.singular:
            opt0.messages = ["boundary (singular) fit: see help('isSingular')"]
        return opt0, opt0, None
    model._warm[1] = (state0.u, state0.beta)
    lower = np.concatenate([lower0, np.full(model.p, -np.inf)])
    x0 = np.concatenate([opt0.theta, state0.beta])
    hessian, derivs, finished, polish_only, spent = None, None, None, False, 0
    if method0 == "nloptwrap" and model.nobs < HESSIAN_MAX_NOBS:
        # BOBYQA, then Newton steps whose last Hessian is the one for the standard errors
        opt = optimize_theta(model.objective, x0, lower, method="nloptwrap", checks=False,
                             bobyqa_tol=START_TOL)
        spent = opt.nfev
        if not opt.singular:
            finished, nfev = newton_finish(model, opt.theta, opt.value, lower)
            spent += nfev
        if finished is not None:
            opt.theta, opt.value, g, hessian = finished
            opt.nfev, opt.method = spent, "bobyqa"
        else:       # a boundary or an ill-conditioned H: on from BOBYQA's end as lmer's
            x0, polish_only = opt.theta, True
    if finished is None:
        opt = optimize_theta(model.objective, x0, lower, method=optimizer,
                             below=model.covariance.below(), checks=False,
                             polish_only=polish_only)
        opt.nfev += spent
        # lme4's deriv12 at the optimum: the standard errors and checkConv from one Hessian
        if model.nobs < HESSIAN_MAX_NOBS:
            g, hessian = deriv12(model.objective, opt.theta, fx=opt.value, lower=lower)
    if hessian is not None:
        free = ~_at_bound(opt.theta, lower)
        derivs = (opt.theta, g[free], hessian[np.ix_(free, free)])
    if opt.singular:
        opt.messages = ["boundary (singular) fit: see help('isSingular')"]
    else:
        opt.messages = check_convergence(model.objective, opt.theta, lower, derivs=derivs)
    # leave the warm start at the optimum
    model.objective(opt.theta)
    opt.beta = opt.theta[k:]
    opt.theta = opt.theta[:k]
    return opt0, opt, hessian


def newton_finish(model, x, fx, lower, maxit=6):
    """Newton steps from near the optimum with deriv12's gradient and Hessian of
    ``model.objective``, every evaluation of one deriv12 started from the mode at
    its centre (so the Hessian does not depend on the order of the evaluations).

    Returns ((x, f(x), g, H), evaluations) with g and H at the returned x once the
    Newton step there is below 1e-7 (relative), or (None,
    evaluations) where H is not positive definite or nearly singular (lme4's
    checkConv criteria) or a step does not lower f.
    """
    count = [0]

    def f(y):
        count[0] += 1
        return model.objective(y)

    for _ in range(maxit):
        centre = model.warm_start(x)

        def around(y):
            model.warm_start(state=centre)
            return f(y)

        g, H = deriv12(around, x, fx=fx, lower=lower, rule="pairs")
        free = ~_at_bound(x, lower)
        gf, Hf = g[free], H[np.ix_(free, free)]
        if not (np.all(np.isfinite(gf)) and np.all(np.isfinite(Hf))):
            return None, count[0]
        ev = np.linalg.eigvalsh(Hf)
        if ev.min() <= 0 or ev.max() > HESS_MAX or ev.max() > HESS_MAX * ev.min():
            # lme4's "nearly unidentifiable" Hessian: the absolute-step differences are not
            # accurate enough to steer by; optimize.py's relative steps are
            return None, count[0]
        step = sla.cho_solve(sla.cho_factor(Hf, lower=True), gf)
        if np.max(np.abs(step) / (1 + np.abs(x[free]))) < 1e-7:
            return (x, fx, g, H), count[0]
        # near the optimum the full step (or half of it) lowers f; where it does not,
        # the finite-difference H is off (an ill-conditioned model): leave it to optimize.py
        for t in (1.0, 0.5):
            cand = x.copy()
            cand[free] -= t * step
            cand = np.maximum(cand, lower)
            fc = f(cand)
            if fc <= fx:
                break
        else:
            return None, count[0]
        x, fx = cand, fc
    return None, count[0]

