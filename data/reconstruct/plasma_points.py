"""Point placement for the plasma reconstruction: move the 10 points of each
group, keeping every per-group sufficient statistic (mean age, mean conc,
within sums wxx, wxy, wyy) exactly fixed -- so no fitted parameter of any of
the four models changes -- until the residual quantiles (R type 7, as printed
by summary()) of the given fitted lines hit the published values.

A model is (intercepts a_g, slopes b_g, scale s): residual of point i in group
g is (y_i - a_g - b_g x_i) / s.  The quantile functions are piecewise linear in
the points, so a trust-region least-squares solve (scipy, deterministic) from a
seeded start converges; afterwards a per-group lower-triangular linear map
restores the second moments exactly (a change of order 1e-12).
"""
import numpy as np
from scipy.optimize import least_squares

PROBS = (0.0, 0.25, 0.5, 0.75, 1.0)


def quantile7(v):
    return np.quantile(np.asarray(v, float), PROBS)


def fix_moments(dx, dy, wxx, wxy, wyy):
    """Centre (dx, dy) and map them linearly to the exact target moments."""
    dx, dy = dx - dx.mean(), dy - dy.mean()
    P = np.column_stack([dx, dy])
    S = P.T @ P
    T = np.array([[wxx, wxy], [wxy, wyy]])
    M = np.linalg.cholesky(T) @ np.linalg.inv(np.linalg.cholesky(S))
    Q = P @ M.T
    return Q[:, 0], Q[:, 1]


def residual_vectors(xm, ym, dx, dy, models):
    """dx, dy: (G, m) arrays.  Returns a list of (n,) residual vectors."""
    out = []
    for a, b, s in models:
        r = (ym[:, None] + dy - a[:, None] - b[:, None] * (xm[:, None] + dx)) / s
        out.append(r.ravel())
    return out


IDX = ((0, 1.0), (39, 0.0)), ((9, 0.25), (10, 0.75)), ((19, 0.5), (20, 0.5)), ((29, 0.75), (30, 0.25)), ((39, 1.0), (0, 0.0))


def place(xm, ym, wxx, wxy, wyy, x0, y0, models, targets, halves, iters=3000, tol=0.05):
    """Gauss-Newton (minimum-norm steps, analytic Jacobian) on the 80 point
    coordinates: 20 per-group moment equations (kept exact) and 5 quantile
    equations per model (misses in half rounding steps `halves`).
    x0, y0: (G, m) start points.  Returns x, y, misses, iterations used."""
    G, m = x0.shape
    n = G * m
    grp = np.repeat(np.arange(G), m)
    x, y = x0.ravel().astype(float).copy(), y0.ravel().astype(float).copy()
    K = len(models)
    A = np.array([np.repeat(a, m) for a, b, s in models])
    B = np.array([np.repeat(b, m) for a, b, s in models])
    S = np.array([s for a, b, s in models])
    T = np.array(targets, float)
    H = np.array(halves, float)
    sc = np.sqrt(np.r_[wxx, wyy]).max()
    for it in range(iters):
        dxc, dyc = x - xm[grp], y - ym[grp]
        F, J = [], []
        for g in range(G):
            sel = grp == g
            rows = np.zeros((5, 2 * n))
            rows[0, :n][sel] = 1
            rows[1, n:][sel] = 1
            rows[2, :n][sel] = 2 * dxc[sel]
            rows[3, :n][sel] = dyc[sel]
            rows[3, n:][sel] = dxc[sel]
            rows[4, n:][sel] = 2 * dyc[sel]
            F.append(np.array([dxc[sel].sum(), dyc[sel].sum(), (dxc[sel] ** 2).sum() - wxx[g],
                               (dxc[sel] * dyc[sel]).sum() - wxy[g], (dyc[sel] ** 2).sum() - wyy[g]])
                     * np.array([1, 1, 1 / sc, 1 / sc, 1 / sc]) * 100)
            J.append(rows * np.array([1, 1, 1 / sc, 1 / sc, 1 / sc])[:, None] * 100)
        worst = 0.0
        for k in range(K):
            r = (y - A[k] - B[k] * x) / S[k]
            o = np.argsort(r, kind="stable")
            for j, ((i1, w1), (i2, w2)) in enumerate(IDX):
                q = w1 * r[o[i1]] + w2 * r[o[i2]]
                miss = (q - T[k, j]) / H[k]
                worst = max(worst, abs(miss))
                row = np.zeros(2 * n)
                for i, w in ((o[i1], w1), (o[i2], w2)):
                    row[i] += -w * B[k, i] / S[k]
                    row[n + i] += w / S[k]
                # quantile rows in units of the residual scale (not half steps)
                F.append(np.array([(q - T[k, j])]))
                J.append(row[None, :])
        F, J = np.concatenate(F), np.vstack(J)
        cons = np.abs(F[:5 * G]).max()
        if worst < tol and cons < 1e-11:
            break
        step = -np.linalg.lstsq(J, F, rcond=None)[0]
        mx = np.abs(step).max()
        if mx > 2.0:
            step *= 2.0 / mx
        x += step[:n]
        y += step[n:]
    # exact moments
    for g in range(G):
        sel = grp == g
        dx, dy = fix_moments(x[sel] - xm[g], y[sel] - ym[g], wxx[g], wxy[g], wyy[g])
        x[sel], y[sel] = xm[g] + dx, ym[g] + dy
    misses = []
    for k in range(K):
        r = (y - A[k] - B[k] * x) / S[k]
        misses.append((quantile7(r) - T[k]) / H[k])
    return x.reshape(G, m), y.reshape(G, m), misses, it
