"""Sequential linear programming for a minimax fit with equality constraints.

Find z with every margin |m_k(z)| <= 1 (m_k: a printed number's distance from
its printed value in half rounding units) and c(z) = 0, by minimizing the worst
margin t = max_k |m_k(z)|.  Each iteration linearizes m and c at z (central
differences, step ``h`` times the scale of each unknown) and solves the LP

    minimize t  over (w, t):  -t <= m + J D w <= t,  c + C D w = 0,  |w_i| <= r,

with D = diag(scale) (the unknowns in their natural units), by HiGHS
(scipy.optimize.linprog).  The step is taken if the true worst margin, after
``project`` (e.g. Newton back onto the score equations), went down; otherwise
the trust radius r shrinks (the classical trust-region SLP for minimax,
e.g. Madsen 1975, "An algorithm for minimax solution of overdetermined systems
of non-linear equations", IMA J. Appl. Math. 16).
"""
import numpy as np
from scipy.optimize import linprog


def jacobian(f, z, step):
    """Central-difference Jacobian of the vector function f at z (steps ``step``)."""
    cols = []
    for i, h in enumerate(step):
        e = np.zeros_like(z)
        e[i] = h
        cols.append((f(z + e) - f(z - e)) / (2 * h))
    return np.column_stack(cols)


def lp_step(m, J, c, C, radius):
    """The LP of one iteration: (scaled step w, predicted worst margin t)."""
    k, n = J.shape
    cost = np.r_[np.zeros(n), 1.0]
    ones = np.ones((k, 1))
    A_ub = np.block([[J, -ones], [-J, -ones]])
    b_ub = np.r_[-m, m]
    A_eq = b_eq = None
    if C is not None and len(c):
        A_eq, b_eq = np.column_stack([C, np.zeros(len(c))]), -c
    bounds = [(-radius, radius)] * n + [(0, None)]
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        return None, np.inf
    return res.x[:n], res.x[n]


def minimax(margins, z0, scale, eq=None, project=None, radius=1e-2, h=1e-6, tol=1e-12,
            maxit=200, log=None):
    """Minimize max |margins(z)| subject to eq(z) = 0; returns (z, worst margin, iterations).

    ``scale``: natural size of each unknown (steps are ``w * scale``); ``project(z)``:
    maps a trial point back onto eq(z) = 0 (or returns None if it cannot)."""
    scale = np.asarray(scale, float)
    z = np.asarray(z0, float).copy()
    if project is not None:
        z = project(z)
    m = margins(z)
    worst = np.max(np.abs(m))
    it = 0
    for it in range(1, maxit + 1):
        J = jacobian(margins, z, h * scale) * scale
        c = eq(z) if eq is not None else np.zeros(0)
        C = jacobian(eq, z, h * scale) * scale if eq is not None else None
        while True:
            w, pred = lp_step(m, J, c, C, radius)
            if w is None:
                radius /= 4
            else:
                trial = z + w * scale
                if project is not None:
                    trial = project(trial)
                mt = margins(trial) if trial is not None else None
                new = np.max(np.abs(mt)) if mt is not None else np.inf
                if new < worst:
                    gain, predicted = worst - new, worst - pred
                    if gain > 0.75 * predicted:
                        radius *= 2
                    elif gain < 0.25 * predicted:
                        radius /= 2
                    break
                radius /= 4
            if radius < tol:
                return z, worst, it
        step = np.max(np.abs(w))
        z, m, worst = trial, mt, new
        if log:
            log(it, worst, radius, step)
        if step < tol:
            break
    return z, worst, it


def least_squares_eq(resid, z0, scale, eq, project, lam=1e-3, tol=1e-12, maxit=100, log=None):
    """Levenberg-Marquardt for min ||resid(z)||² subject to eq(z) = 0.

    Each step solves the linearized problem min ||r + J D w||² + λ||y||² over the steps
    w = w_p + N y that satisfy c + C D w = 0 (w_p the minimum-norm solution, N an
    orthonormal basis of the null space of C D: the null-space method, Nocedal &
    Wright 2006, section 16.2), then ``project``s back onto eq = 0; λ falls after a
    successful step and rises after a failed one.  Returns (z, ||r||², iterations)."""
    scale = np.asarray(scale, float)
    z = project(np.asarray(z0, float))
    r = resid(z)
    cost = r @ r
    it = 0
    for it in range(1, maxit + 1):
        J = jacobian(resid, z, 1e-6 * scale) * scale
        C = jacobian(eq, z, 1e-6 * scale) * scale
        c = eq(z)
        _, sv, Vt = np.linalg.svd(C)
        N = Vt[len(c):].T
        wp = -np.linalg.pinv(C) @ c
        A, b = J @ N, r + J @ wp
        while True:
            y = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), -A.T @ b)
            w = wp + N @ y
            trial = project(z + w * scale)
            rt = resid(trial) if trial is not None else None
            if rt is not None and rt @ rt < cost:
                lam = max(lam / 10, 1e-12)
                break
            lam *= 10
            if lam > 1e16:
                return z, cost, it
        step = np.max(np.abs(w))
        z, r, cost = trial, rt, rt @ rt
        if log:
            log(it, cost, lam, step)
        if step < tol:
            break
    return z, cost, it
