"""GLM families for glmer: the binomial (logit, probit, cloglog) and Poisson (log).

Each :class:`Family` holds what R's family objects hold (McCullagh & Nelder
1989, ch. 2; R's ``binomial()`` and ``poisson()``):

* the link g and its inverse: η = g(μ), μ = g⁻¹(η), and dμ/dη (``mu_eta``);
* the variance function V(μ): μ(1 - μ) for the binomial proportion, μ for counts;
* the unit deviances d_i (``dev_resids``), whose sum is the deviance and whose
  signed square roots are the deviance residuals;
* ``aic(y, n, mu, wt)``: -2 log-likelihood, the term lme4's Laplace objective
  adds to log|L|² + ‖u‖² (Bates et al. 2015, JSS 67(1); lme4's glmer
  vignette). For the binomial it includes the binomial coefficients, with the
  number of trials as R takes it (the prior weights for a proportion).

The response of a binomial family is the proportion y = successes / trials
with prior weights wt = trials; a 0/1 response has trials 1.
"""

from dataclasses import dataclass

import numpy as np
from scipy import special

from .errors import LmmError

EPS = np.finfo(float).eps
INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _ylogy(y, mu):
    """y log(y / mu), 0 where y = 0 (R's y_log_y)."""
    return special.xlogy(y, y / mu)


# -- links ---------------------------------------------------------------------------------------
class Link:
    """A link function: ``linkfun`` g, ``linkinv`` g⁻¹ and ``mu_eta`` = dμ/dη."""

    name = None

    def __repr__(self):
        return f"Link({self.name!r})"


class Logit(Link):
    name = "logit"

    def linkfun(self, mu):
        return special.logit(mu)

    def linkinv(self, eta):
        return special.expit(eta)

    def mu_eta(self, eta):
        # dμ/dη = μ(1 - μ) = e^{-|η|} / (1 + e^{-|η|})², stable for large |η|
        e = np.exp(-np.abs(eta))
        return e / (1.0 + e) ** 2

    def mu_eta2(self, eta):
        # d²μ/dη² = μ(1 - μ)(1 - 2μ)
        return self.mu_eta(eta) * (1.0 - 2.0 * special.expit(eta))


class Probit(Link):
    name = "probit"

    def linkfun(self, mu):
        return special.ndtri(mu)

    def linkinv(self, eta):
        return special.ndtr(eta)

    def mu_eta(self, eta):
        return np.maximum(np.exp(-0.5 * eta * eta) * INV_SQRT_2PI, EPS)

    def mu_eta2(self, eta):
        # d²μ/dη² = -η φ(η)
        return -eta * np.exp(-0.5 * eta * eta) * INV_SQRT_2PI


class Cloglog(Link):
    name = "cloglog"

    def linkfun(self, mu):
        return np.log(-np.log1p(-mu))

    def linkinv(self, eta):
        # μ = 1 - exp(-exp(η)), kept inside (ε, 1 - ε) as R's binomial(cloglog)
        return np.clip(-np.expm1(-np.exp(eta)), EPS, 1 - EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta) * np.exp(-np.exp(eta)), EPS)

    def mu_eta2(self, eta):
        # d²μ/dη² = e^η e^{-e^η} (1 - e^η)
        e = np.exp(np.minimum(eta, 700.0))
        return e * np.exp(-e) * (1.0 - e)


class Log(Link):
    name = "log"

    def linkfun(self, mu):
        return np.log(mu)

    def linkinv(self, eta):
        return np.maximum(np.exp(eta), EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(eta), EPS)

    def mu_eta2(self, eta):
        return np.exp(eta)


LINKS = {"logit": Logit, "probit": Probit, "cloglog": Cloglog, "log": Log}


# -- families ------------------------------------------------------------------------------------
@dataclass
class Family:
    """A GLM family with its link: ``binomial()`` or ``poisson()``."""

    name: str
    link: Link

    def linkfun(self, mu):
        return self.link.linkfun(mu)

    def linkinv(self, eta):
        return self.link.linkinv(eta)

    def mu_eta(self, eta):
        return self.link.mu_eta(eta)

    def aic(self, y, n, mu, wt):
        """-2 log-likelihood at μ (R's family()$aic; see ``aic_terms``)."""
        return self.aic_terms(y, n, wt)(mu)

    @property
    def canonical(self):
        return (self.name, self.link.name) in (("binomial", "logit"), ("poisson", "log"))

    def working(self, y, mu, eta, wt, newton=False):
        """Working weights w and residuals r for one PIRLS step at η.

        Fisher scoring (IRLS): w = wt μ'²/V(μ), r = (y - μ)/μ'. With ``newton``
        and a non-canonical link, the observed information instead (Newton's
        method; the score s = wt (y - μ) μ'/V is the same, so is the mode):
        w = wt μ'²/V - wt (y - μ)(μ''/V - μ'² V'/V²) and r = s/w, where that w is
        positive (elsewhere Fisher's). For a canonical link both coincide.
        """
        d = self.mu_eta(eta)
        V = self.variance(mu)
        w = wt * d * d / V
        if not newton or self.canonical:
            return w, (y - mu) / d
        wo = w - wt * (y - mu) * (self.link.mu_eta2(eta) / V - d * d * self.variance_deriv(mu) / V ** 2)
        wo = np.where(wo > 0, wo, w)
        return wo, wt * (y - mu) * d / (V * wo)

    def __repr__(self):
        return f"\nFamily: {self.name} \nLink function: {self.link.name} \n"


class Binomial(Family):
    """The binomial family for a proportion y with prior weights wt (the trials)."""

    def variance(self, mu):
        return mu * (1.0 - mu)

    def variance_deriv(self, mu):
        return 1.0 - 2.0 * mu

    def dev_resids(self, y, mu, wt):
        """Unit deviances 2 wt (y log(y/μ) + (1 - y) log((1 - y)/(1 - μ)))."""
        return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))

    def aic_terms(self, y, n, wt):
        """μ -> -2 Σ (wt/m) log C(m, m y) μ^{my} (1-μ)^{m(1-y)}, m the trials (R's
        binomial()$aic), with the binomial coefficients computed once."""
        m = n if np.any(n > 1) else wt
        k, size = np.round(m * y), np.round(m)
        # log C(size, k) + k log μ + (size - k) log(1 - μ), as scipy's binom.logpmf
        logc = special.gammaln(size + 1) - special.gammaln(k + 1) - special.gammaln(size - k + 1)
        scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)

        def aic(mu):
            logp = logc + special.xlogy(k, mu) + special.xlog1py(size - k, -mu)
            return float(-2.0 * np.sum(scale * logp))
        return aic

    def mu_start(self, y, wt):
        """R's binomial initialize: μ₀ = (wt y + 1/2) / (wt + 1)."""
        return (wt * y + 0.5) / (wt + 1.0)

    def valid_mu(self, mu):
        return np.minimum(np.maximum(mu, EPS), 1 - EPS)


class Poisson(Family):
    """The Poisson family for counts y (prior weights wt multiply the log-likelihood)."""

    def variance(self, mu):
        return mu

    def variance_deriv(self, mu):
        return np.ones_like(mu)

    def dev_resids(self, y, mu, wt):
        """Unit deviances 2 wt (y log(y/μ) - (y - μ))."""
        return 2.0 * wt * (_ylogy(y, mu) - (y - mu))

    def aic_terms(self, y, n, wt):
        """μ -> -2 Σ wt log(μ^y e^{-μ} / y!) (R's poisson()$aic), log y! computed once."""
        logf = special.gammaln(y + 1)
        off = y != np.floor(y)           # the probability is 0 off the integers

        def aic(mu):
            logp = special.xlogy(y, mu) - logf - mu    # as scipy's poisson.logpmf
            if off.any():
                logp = np.where(off, -np.inf, logp)
            return float(-2.0 * np.sum(logp * wt))
        return aic

    def mu_start(self, y, wt):
        """R's poisson initialize: μ₀ = y + 0.1."""
        return y + 0.1

    def valid_mu(self, mu):
        return np.maximum(mu, EPS)


def _make(cls, name, link, allowed):
    if isinstance(link, Link):
        link = link.name
    if link not in allowed:
        raise LmmError(f"link '{link}' is not available for the {name} family in lmmlite; "
                       f"use one of {', '.join(allowed)}")
    return cls(name, LINKS[link]())


def binomial(link="logit"):
    """R's ``binomial(link = "logit")``: links logit, probit and cloglog."""
    return _make(Binomial, "binomial", link, ("logit", "probit", "cloglog"))


def poisson(link="log"):
    """R's ``poisson(link = "log")``."""
    return _make(Poisson, "poisson", link, ("log",))


def as_family(family):
    """A :class:`Family` from a family object, its name ("binomial", "poisson") or a
    factory (``lmmlite.binomial``)."""
    if isinstance(family, Family):
        return family
    if callable(family) and family in (binomial, poisson):
        return family()
    if isinstance(family, str):
        if family == "binomial":
            return binomial()
        if family == "poisson":
            return poisson()
        raise LmmError(f"family '{family}' is not supported by glmer in lmmlite; "
                       "use 'binomial' or 'poisson' (for a normal response use lmer)")
    raise LmmError(f"family must be 'binomial', 'poisson' or a family object such as "
                   f"lmmlite.binomial(link='probit'), not {family!r}")


__all__ = ["Family", "Binomial", "Poisson", "binomial", "poisson", "as_family", "LINKS"]
