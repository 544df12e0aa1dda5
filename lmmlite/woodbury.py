"""The marginal covariance V = I + ZΛΛ'Z' of a linear mixed model, in q x q algebra.

Σ = σ²V is n x n; everything Kenward-Roger and the exact Satterthwaite
derivatives need is a product of V⁻¹ with Z, X and y, and the Woodbury identity
(with A = Λ'Z'ZΛ + I, the matrix deviance.py factors, and M = ΛA⁻¹Λ')

    V⁻¹ = I - ZMZ'

turns each into q x q and q x p products (q random effects) with G = Z'Z sparse:

    Z'V⁻¹X = Z'X - GMZ'X,    X'V⁻¹X = X'X - X'ZMZ'X,    C = Z'V⁻¹Z = G - GMG.

A⁻¹ is formed by blocks: the first term's part of A is block diagonal (one
grouping factor), so only the Schur complement of the other terms' columns is
inverted densely.  When Λ is diagonal with no entry below 0.01, GM and C are
scalings of I - A⁻¹ (see ``Marginal._direct``).  Dense q x q arrays kept: M, GM
and C (3 x 8q² bytes).

:class:`LevelBlocks` applies matrices D = I_levels ⊗ E (one small symmetric E
per level of a term, on that term's columns): the derivatives of V in the
variance parameters all have the form Z D Z'.
"""

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

DIRECT_MIN = 1e-2   # the smallest diagonal Λ entry for C and GM straight from A⁻¹


def spd_inverse(A):
    """A⁻¹ of a dense symmetric positive definite A (LAPACK potrf + potri), both triangles."""
    c, info = sla.lapack.dpotrf(A, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError("Λ'Z'ZΛ + I is not positive definite")
    inv, info = sla.lapack.dpotri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError("Λ'Z'ZΛ + I could not be inverted")
    return np.tril(inv) + np.tril(inv, -1).T


def block_inverse(A, q1, p1):
    """A⁻¹ of the sparse SPD A = Λ'Z'ZΛ + I, as a dense array.

    The first term's block A11 is block diagonal (p1 x p1 per level), so with
    B = A12, H = A11⁻¹B and the Schur complement S = A22 - B'H:

        A⁻¹ = [[A11⁻¹ + H S⁻¹ H',  -H S⁻¹], [-S⁻¹H', S⁻¹]].
    """
    A = A.tocsr()
    q = A.shape[0]
    nl = q1 // p1
    blocks = sp.bsr_matrix(A[:q1, :q1], blocksize=(p1, p1))
    blocks.sort_indices()
    if blocks.data.shape[0] != nl:
        raise np.linalg.LinAlgError("the first term's block of Λ'Z'ZΛ + I is not block diagonal")
    A11inv = sp.bsr_matrix((np.linalg.inv(blocks.data), np.arange(nl), np.arange(nl + 1)),
                           shape=(q1, q1)).tocsr()
    out = np.zeros((q, q))
    if q1 == q:
        out[:, :] = A11inv.toarray()
        return out
    B = A[:q1, q1:]
    H = (A11inv @ B).tocsc()
    S = A[q1:, q1:].toarray() - (B.T @ H).toarray()
    Sinv = spd_inverse(S)
    Y = np.asarray(H @ Sinv)                                  # H S⁻¹  (q1 x r)
    out[:q1, :q1] = np.asarray(H @ Y.T)                       # H S⁻¹ H'
    out[:q1, :q1] += A11inv.toarray() if p1 > 1 else np.diag(A11inv.diagonal())
    out[:q1, q1:] = -Y
    out[q1:, :q1] = -Y.T
    out[q1:, q1:] = Sinv
    return out


class Marginal:
    """V⁻¹ against Z and X at one θ (see the module docstring).

    Attributes
    ----------
    G : sparse (q, q), Z'Z;  ZX : (q, p), Z'X;  XX : (p, p), X'X
    M : (q, q), ΛA⁻¹Λ';  GM : (q, q), G M;  C : (q, q), Z'V⁻¹Z
    N : (q, p), M Z'X (V⁻¹X = X - ZN);  ZVX : (q, p), Z'V⁻¹X;  XVX : (p, p), X'V⁻¹X
    """

    def __init__(self, dev, theta):
        X = dev.X
        self.n, self.p = X.shape
        Z = sp.hstack([b.Z() for b in dev.blocks], format="csr")
        self.Z = Z
        q = self.q = Z.shape[1]
        Ts = dev.split(theta)
        Lam = sp.block_diag([sp.kron(sp.identity(b.nlevels), T, format="csr")
                             for b, T in zip(dev.blocks, Ts)], format="csr")
        G = self.G = (Z.T @ Z).tocsr()
        self.ZX = np.asarray(Z.T @ X)
        self.XX = X.T @ X
        b1 = dev.blocks[0]
        Ainv = block_inverse(Lam.T @ G @ Lam + sp.identity(q), b1.nlevels * b1.p, b1.p)
        lam = Lam.diagonal() if all(b.p == 1 for b in dev.blocks) else None
        if lam is not None and lam.min() >= DIRECT_MIN:
            self._direct(Ainv, lam)
        else:
            if lam is not None:                                   # Λ diagonal: scale in place
                Ainv *= lam[:, None]
                Ainv *= lam[None, :]
                self.M = Ainv
            else:
                self.M = np.asarray(Lam @ np.asarray(Lam @ Ainv).T)   # Λ A⁻¹ Λ' (A⁻¹ symmetric)
            self.GM = np.asarray(G @ self.M)                      # (GM)' = MG
            self.C = G.toarray() - np.asarray(G @ self.GM.T)      # G - GMG
        self.N = self.M @ self.ZX
        self.ZVX = self.ZX - G @ self.N
        self.XVX = self.XX - self.ZX.T @ self.N

    def _direct(self, Ainv, lam):
        """M, GM and C from A⁻¹ alone, for a diagonal Λ with no small entry.

        With B = I - A⁻¹ = ΛGΛA⁻¹ (ΛGΛ = A - I): GM = Λ⁻¹BΛ and C = G - GMG = Λ⁻¹BΛ⁻¹,
        elementwise scalings instead of two sparse-dense products with q columns.
        B loses digits where ΛGΛ is tiny, so θ < DIRECT_MIN takes G - GMG instead.
        """
        ratio = lam[None, :] / lam[:, None]
        self.M = Ainv * lam[:, None] * lam[None, :]
        Ainv *= -1.0
        Ainv[np.diag_indices_from(Ainv)] += 1.0                  # B, in A⁻¹'s place
        self.GM = Ainv * ratio
        Ainv /= lam[:, None]
        Ainv /= lam[None, :]
        self.C = Ainv

    def vinv_z(self, z, zv=None):
        """(Z'V⁻¹v, v'V⁻¹v) for a vector v with Z'v = ``z`` and v'v = ``zv``."""
        Mz = self.M @ z
        return z - self.G @ Mz, (None if zv is None else zv - z @ Mz)


class LevelBlocks:
    """D = I_levels ⊗ E on one term's columns of Z (E a small symmetric p_k x p_k)."""

    def __init__(self, cols, nlevels, p, E):
        self.cols, self.nlevels, self.p, self.E = cols, nlevels, p, E
        self.scalar = p == 1
        i, j = np.nonzero(E)
        self.nz = list(zip(i.tolist(), j.tolist(), E[i, j].tolist()))   # E's non-zero entries

    def _rows(self, i):
        return self.cols.start + np.arange(self.nlevels) * self.p + i

    def apply(self, U):
        """D U for U holding the term's rows (a (levels p_k,) vector or (levels p_k, c) array)."""
        if self.scalar:
            return self.E[0, 0] * U
        U3 = U.reshape(self.nlevels, self.p, -1)
        return np.einsum("ij,ljc->lic", self.E, U3).reshape(U.shape)

    def trace(self, C, GM=None):
        """tr(D C) (C a symmetric q x q); with GM, tr(D (I - GM) C) = tr(D Z'V⁻²Z)."""
        out = 0.0
        for i, j, e in self.nz:
            ri, rj = self._rows(i), self._rows(j)
            s = np.sum(C[rj, ri])
            if GM is not None:
                s -= np.einsum("lc,lc->", GM[rj], C[ri])
            out += e * s
        return float(out)

    def trace2(self, other, C):
        """tr(D_self C D_other C) for a symmetric q x q C."""
        Ckl = C[self.cols, other.cols]
        if self.scalar and other.scalar:
            return float(self.E[0, 0] * other.E[0, 0] * np.sum(Ckl * Ckl))
        C4 = Ckl.reshape(self.nlevels, self.p, other.nlevels, other.p)
        DCD = np.einsum("ij,xjyk,kl->xiyl", self.E, C4, other.E)
        return float(np.sum(DCD * C4))

    def quad(self, u, v):
        """u' D v for q-vectors u, v."""
        return float(u[self.cols] @ self.apply(v[self.cols]))

    def embed(self, v):
        """D v as a q-vector (zero outside the term's columns)."""
        out = np.zeros_like(v)
        out[self.cols] = self.apply(v[self.cols])
        return out


def term_columns(blocks):
    """The slice of Z's columns of every term."""
    out, start = [], 0
    for b in blocks:
        out.append(slice(start, start + b.nlevels * b.p))
        start += b.nlevels * b.p
    return out
