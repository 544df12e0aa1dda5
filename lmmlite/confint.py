"""Confidence intervals for the parameters of an lmer fit (lme4's confint.merMod)."""


def confint(fit, parm=None, level=0.95, method="profile", nsim=500, seed=None):
    raise NotImplementedError("confint is not implemented yet")
