"""Closed-form fits for the plasma reconstruction (4 groups x 10, balanced).

The two lm fits and the random-intercept lmer depend on the data only through
the group means (xg, yg) and the pooled within-group sums Wxx, Wxy, Wyy; the
formulas below are exact for that design.  The random-slope lmer is fitted
with a small dense REML code on the 4 per-group 2x2 blocks.  lme4's optimizer
(NLopt BOBYQA, start theta = lme4's, xtol_abs = ftol_abs = 1e-8) is run on the
closed-form deviance, so the stopping point is lme4's (checked against R).
"""
import numpy as np
from scipy import stats

M, G = 10, 4                 # observations per group, groups
N = M * G
LOG2PI = np.log(2 * np.pi)


def unpack(s):
    s = np.asarray(s, float)
    return s[0:4], s[4:8], s[8], s[9], s[10]


# ---------------------------------------------------------------- lm fits
def lm0(s):
    xg, yg, Wxx, Wxy, Wyy = unpack(s)
    xb, yb = xg.mean(), yg.mean()
    Sxx = Wxx + M * ((xg - xb) ** 2).sum()
    Sxy = Wxy + M * ((xg - xb) * (yg - yb)).sum()
    Syy = Wyy + M * ((yg - yb) ** 2).sum()
    b1 = Sxy / Sxx
    b0 = yb - b1 * xb
    rss = Syy - Sxy ** 2 / Sxx
    df = N - 2
    s2 = rss / df
    se1 = np.sqrt(s2 / Sxx)
    se0 = np.sqrt(s2 * (1 / N + xb ** 2 / Sxx))
    r2 = 1 - rss / Syy
    F = (Syy - rss) / s2
    return dict(b=np.array([b0, b1]), se=np.array([se0, se1]), sigma=np.sqrt(s2), r2=r2,
                adjr2=1 - (1 - r2) * (N - 1) / df, F=F, df=df, Fp=stats.f.sf(F, 1, df))


def lm1(s):
    xg, yg, Wxx, Wxy, Wyy = unpack(s)
    b1 = Wxy / Wxx
    a = yg - b1 * xg
    rss = Wyy - Wxy ** 2 / Wxx
    df = N - 5
    s2 = rss / df
    # X'X for columns 1, x, g2, g3, g4
    D = np.zeros((G, 5))
    D[:, 0] = 1
    D[:, 1] = xg
    D[1:, 2:] = np.eye(3)
    XtX = M * D.T @ D
    XtX[1, 1] += Wxx
    V = s2 * np.linalg.inv(XtX)
    b = np.r_[a[0], b1, a[1:] - a[0]]
    yb = yg.mean()
    Syy = Wyy + M * ((yg - yb) ** 2).sum()
    r2 = 1 - rss / Syy
    F = (Syy - rss) / 4 / s2
    return dict(b=b, se=np.sqrt(np.diag(V)), sigma=np.sqrt(s2), r2=r2,
                adjr2=1 - (1 - r2) * (N - 1) / df, F=F, df=df, Fp=stats.f.sf(F, 4, df))


# ------------------------------------------------------ random intercept
class RI:
    """REML random-intercept model y = b0 + b1 x + b_g + e, balanced 4 x 10."""

    def __init__(self, s):
        xg, yg, Wxx, Wxy, Wyy = unpack(s)
        self.xg, self.yg = xg, yg
        P = np.column_stack([np.ones(G), xg])
        self.A0 = np.array([[0.0, 0.0], [0.0, Wxx]])
        self.B = M * P.T @ P
        self.b0 = np.array([0.0, Wxy])
        self.bb = M * P.T @ yg
        self.c0, self.cc = Wyy, M * yg @ yg

    def parts(self, theta):
        w = 1 / (1 + M * theta ** 2)
        A = self.A0 + w * self.B
        b = self.b0 + w * self.bb
        Ai = np.linalg.inv(A)
        beta = Ai @ b
        r2 = self.c0 + w * self.cc - b @ beta
        return w, A, Ai, beta, r2

    def dev(self, theta):
        w, A, Ai, beta, r2 = self.parts(theta)
        k = N - 2
        return (-G * np.log(w) + np.log(np.linalg.det(A))
                + k * (1 + LOG2PI + np.log(r2 / k)))

    def bobyqa(self, theta0=1.0):
        import nlopt
        opt = nlopt.opt(nlopt.LN_BOBYQA, 1)
        opt.set_lower_bounds([0.0])
        opt.set_upper_bounds([np.inf])
        opt.set_min_objective(lambda x, g: float(self.dev(x[0])))
        opt.set_xtol_abs(1e-8)
        opt.set_ftol_abs(1e-8)
        opt.set_maxeval(100000)
        return float(opt.optimize([theta0])[0])

    def ddev(self, theta):
        """Analytic d dev / d theta."""
        w, A, Ai, beta, r2 = self.parts(theta)
        wt = -2 * M * theta * w ** 2
        dr2 = self.cc - 2 * self.bb @ beta + beta @ self.B @ beta
        return (G * 2 * M * theta * w + np.trace(Ai @ self.B) * wt
                + (N - 2) * dr2 * wt / r2)

    def exact(self, guess=None):
        """The exact REML optimum (root of the analytic derivative)."""
        from scipy.optimize import brentq
        t = self.bobyqa() if guess is None else guess
        return brentq(self.ddev, t - 0.05, t + 0.05, xtol=1e-15, rtol=1e-15)

    def fit(self, theta, L=((1, 0), (0, 1))):
        w, A, Ai, beta, r2 = self.parts(theta)
        k = N - 2
        s2 = r2 / k
        sig = np.sqrt(s2)
        V = s2 * Ai
        se = np.sqrt(np.diag(V))
        lam = theta ** 2
        ranef = lam * M * w * (self.yg - beta[0] - beta[1] * self.xg)
        # Satterthwaite (lmerTest): phi = (theta, sigma), deviance Hessian, dC/dphi
        Bm = self.B
        dlogdet = np.trace(Ai @ Bm)
        d2logdet = -np.trace(Ai @ Bm @ Ai @ Bm)
        dr2 = self.cc - 2 * self.bb @ beta + beta @ Bm @ beta
        u = self.bb - Bm @ beta
        d2r2 = -2 * u @ Ai @ u
        dAi = -Ai @ Bm @ Ai
        wt = -2 * M * theta * w ** 2
        wtt = -2 * M * w ** 2 + 8 * M ** 2 * theta ** 2 * w ** 3
        gl1 = 2 * M * theta * w
        gl2 = 2 * M * w - 4 * M ** 2 * theta ** 2 * w ** 2
        Htt = G * gl2 + d2logdet * wt ** 2 + dlogdet * wtt + (d2r2 * wt ** 2 + dr2 * wtt) / s2
        Hts = -2 * dr2 * wt / sig ** 3
        Hss = -2 * k / s2 + 6 * r2 / s2 ** 2
        H = np.array([[Htt, Hts], [Hts, Hss]])
        Avp = 2 * np.linalg.inv(H)
        dfs = []
        for l in L:
            l = np.asarray(l, float)
            g = np.array([s2 * l @ dAi @ l * wt, 2 * sig * l @ Ai @ l])
            dfs.append(2 * (l @ V @ l) ** 2 / (g @ Avp @ g))
        dfs = np.array(dfs)
        t = beta / se
        crit = -G * np.log(w) + np.log(np.linalg.det(A)) + k * (1 + LOG2PI + np.log(r2 / k))
        return dict(theta=theta, beta=beta, se=se, t=t, sigma=sig, s2=s2,
                    vg=lam * s2, sdg=theta * sig, corr=V[0, 1] / se[0] / se[1],
                    ranef=ranef, crit=crit, df=dfs, p=2 * stats.t.sf(np.abs(t), dfs))

    def resid(self, theta, x, y, g):
        """Residuals (not scaled) for individual points (g = 0..3)."""
        f = self.fit(theta)
        return y - f["beta"][0] - f["beta"][1] * x - f["ranef"][g]


# ---------------------------------------------------------- random slope
class RS:
    """REML model y = b0 + b1 x + (1 + x | group) from per-group sufficient
    statistics: group means xg, yg and within sums wxx, wxy, wyy (length 4)."""

    def __init__(self, xg, yg, wxx, wxy, wyy):
        # computed with x and y centred at their overall means (less
        # cancellation); Lambda is mapped accordingly (T^{-1} Lambda), the
        # fixed effects are mapped back in fit().
        self.xg, self.yg = np.asarray(xg, float), np.asarray(yg, float)
        self.cx, self.cy = self.xg.mean(), self.yg.mean()
        self.Ti = np.array([[1.0, self.cx], [0.0, 1.0]])
        self.XX = np.empty((G, 2, 2))
        self.Xy = np.empty((G, 2))
        self.yy = np.empty(G)
        for g in range(G):
            x, y = self.xg[g] - self.cx, self.yg[g] - self.cy
            self.XX[g] = [[M, M * x], [M * x, wxx[g] + M * x * x]]
            self.Xy[g] = [M * y, wxy[g] + M * x * y]
            self.yy[g] = wyy[g] + M * y * y

    def lam(self, theta):
        return self.Ti @ np.array([[theta[0], 0.0], [theta[1], theta[2]]])

    def parts(self, theta):
        L = self.lam(theta)
        XtVX = np.zeros((2, 2))
        XtVy = np.zeros(2)
        yVy = 0.0
        logdet = 0.0
        Ais = []
        for g in range(G):
            XX, Xy = self.XX[g], self.Xy[g]
            A = L.T @ XX @ L + np.eye(2)
            Ai = np.linalg.inv(A)
            Ais.append(Ai)
            logdet += np.log(np.linalg.det(A))
            C = XX @ L                      # X'Z Lambda
            c = L.T @ Xy                    # Lambda' Z'y
            XtVX += XX - C @ Ai @ C.T
            XtVy += Xy - C @ Ai @ c
            yVy += self.yy[g] - c @ Ai @ c
        beta = np.linalg.solve(XtVX, XtVy)
        r2 = yVy - XtVy @ beta
        return L, Ais, logdet, XtVX, beta, r2

    def dev(self, theta):
        try:
            L, Ais, logdet, XtVX, beta, r2 = self.parts(theta)
        except np.linalg.LinAlgError:
            return np.inf
        k = N - 2
        d = logdet + np.log(np.linalg.det(XtVX)) + k * (1 + LOG2PI + np.log(r2 / k))
        return d if np.isfinite(d) else np.inf

    def bobyqa(self, theta0=(1.0, 0.0, 1.0)):
        import nlopt
        opt = nlopt.opt(nlopt.LN_BOBYQA, 3)
        opt.set_lower_bounds([0.0, -np.inf, 0.0])
        opt.set_upper_bounds([np.inf] * 3)
        opt.set_min_objective(lambda x, g: float(self.dev(np.asarray(x))))
        opt.set_xtol_abs(1e-8)
        opt.set_ftol_abs(1e-8)
        opt.set_maxeval(100000)
        return np.asarray(opt.optimize(list(theta0)), float)

    def fit(self, theta):
        theta = np.asarray(theta, float)
        L, Ais, logdet, XtVX, beta, r2 = self.parts(theta)
        k = N - 2
        s2 = r2 / k
        T = np.array([[1.0, -self.cx], [0.0, 1.0]])      # centred -> raw coefficients
        b = np.empty((G, 2))
        for g in range(G):
            u = Ais[g] @ L.T @ (self.Xy[g] - self.XX[g] @ beta)
            b[g] = T @ (L @ u)
        Lr = T @ L
        beta = T @ beta + np.array([self.cy, 0.0])
        V = s2 * T @ np.linalg.inv(XtVX) @ T.T
        se = np.sqrt(np.diag(V))
        S = s2 * Lr @ Lr.T
        sd = np.sqrt(np.diag(S))
        crit = logdet + np.log(np.linalg.det(XtVX)) + k * (1 + LOG2PI + np.log(r2 / k))
        return dict(theta=theta, beta=beta, se=se, t=beta / se, sigma=np.sqrt(s2), s2=s2,
                    v0=S[0, 0], v1=S[1, 1], sd0=sd[0], sd1=sd[1], rcorr=S[0, 1] / sd[0] / sd[1],
                    corr=V[0, 1] / se[0] / se[1], ranef=b, crit=crit)
