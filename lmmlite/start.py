"""A start for θ near the optimum when every random term is a scalar intercept.

Large crossed models (thousands of levels) cost a dense Cholesky factorization per
deviance evaluation, so the optimizer's start matters.  lme4 starts at θ = 1; here,
for models whose random terms are all ``(1 | g)``, each term's variance is first
estimated by the one-way analysis-of-variance (moment) estimator on the residuals
of the ordinary least-squares fit of y on X (Searle, Casella & McCulloch 1992,
*Variance Components*, sect. 3.5, eq. 3.23-3.25 for unbalanced data):

    σ²_w,k = SSW_k / (n - a_k),
    σ²_k   = (SSB_k - (a_k - 1) σ²_w,k) / (n - Σ_l n_l² / n),

with a_k levels of n_l rows.  With crossed factors the within-level variance of one
factor contains the others' variances, so the residual variance is taken as
σ²_e = var(e) - Σ_k σ²_k, and θ_k = σ_k / σ_e.  It is only a start: the optimizer
goes on to the exact optimum, which does not depend on it.
"""

import numpy as np

FLOOR = 0.05   # smallest θ_k of the start (a start at the boundary would stay there)


def is_intercepts_only(blocks):
    """Every random term is (1 | g): one column of ones."""
    return all(b.p == 1 and np.all(b.X[:, 0] == b.X[0, 0]) and b.X[0, 0] != 0 for b in blocks)


def moment_start(blocks, X, y):
    """θ from one-way moment estimates of each term's variance (see the module text)."""
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    e = y - X @ beta
    n = len(e)
    total = float(e @ e) / max(n - X.shape[1], 1)
    variances = []
    for b in blocks:
        counts = np.bincount(b.codes, minlength=b.nlevels).astype(float)
        sums = np.bincount(b.codes, weights=e, minlength=b.nlevels)
        used = counts > 0
        ssb = float(np.sum(sums[used] ** 2 / counts[used])) - e.sum() ** 2 / n
        ssw = float(e @ e) - float(np.sum(sums[used] ** 2 / counts[used]))
        a = int(used.sum())
        within = ssw / max(n - a, 1)
        denom = n - float(np.sum(counts ** 2)) / n
        variances.append(max((ssb - (a - 1) * within) / denom, 0.0) if denom > 0 else 0.0)
    resid = max(total - sum(variances), 0.05 * total)
    return np.maximum(np.sqrt(np.array(variances) / resid), FLOOR)
