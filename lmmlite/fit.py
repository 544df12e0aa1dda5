"""The interface every fitted model shares (lm, lmer): R's generic accessors.

A fit answers with the same names whatever its class, as R's generics do:

- ``fixef``: estimates of the estimable fixed effects (a Series); ``vcov`` their
  covariance matrix (a DataFrame); ``sigma`` the residual standard deviation;
- ``coef()``: R's ``coef()``: lm's coefficients (NA where aliased), lmer's
  per-level coefficients (fixed plus random);
- ``nobs`` observations used, ``n_dropped`` rows removed for NA, ``aliased`` the
  fixed-effect columns dropped as linear combinations of others (lme4 calls them
  ``dropped``, an alias here);
- ``loglik`` (for REML fits minus half the REML criterion), ``npar`` its number of
  parameters, ``aic``, ``bic``, ``deviance``, ``df_residual`` (lme4: nobs - npar);
- ``fitted()``, ``residuals()``, ``summary()``, ``confint()``;
- ``mixed``: True for a model with random effects.

The module functions of the package (``lmmlite.fixef(fit)``, ``logLik``, ``AIC``,
...) mirror these names.
``cached(key, build)`` keeps costly derived objects (Satterthwaite's and
Kenward-Roger's derivatives) with the fit that they belong to.
"""


class FitBase:
    """Base class of :class:`~lmmlite.lm.LmFit` and :class:`~lmmlite.results.LmerFit`."""

    mixed = False

    @property
    def dropped(self):
        """lme4's name for :attr:`aliased`: the dropped fixed-effect columns."""
        return self.aliased

    @property
    def n_dropped(self):
        """Number of rows removed because of missing values (R's ``na.omit``)."""
        return self.frame.n_dropped

    def cached(self, key, build):
        """``build(self)`` once per fit and ``key``; later calls return the same object."""
        store = self.__dict__.setdefault("_cache", {})
        if key not in store:
            store[key] = build(self)
        return store[key]
