"""R's number formatting and printing rules, in one place.

Everything here reproduces what R 4.x prints, character for character, so
that lmmlite's ``summary()`` output can be compared with ``lme4`` /
``lmerTest`` / ``lm`` output in the book.  The rules were learned from R's
sources (``formatReal``/``scientific`` in ``src/main/format.c``,
``printCoefmat``, ``format.pval``, ``printMatrix``, ``abbreviate``) and from
lme4's ``formatVC`` / ``print.summary.merMod``; the code is our own.

Conventions: R's ``NA`` is represented by ``None`` / ``pandas.NA`` in
:func:`format_num`; in the table printers every ``NaN`` is treated as R's
``NA`` (that is what missing coefficients are).  Printers return the printed
text *without* a trailing newline.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .errors import LmmError

EPS = 2.220446049250313e-16  # .Machine$double.eps (printCoefmat's eps.Pvalue)
SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"

# Powers of ten held exactly in (x87 80-bit) long double, as R's `tbl[]`.
_LD = np.longdouble
_TBL = [_LD(1)]
for _ in range(27):
    _TBL.append(_TBL[-1] * _LD(10))
_KP_MAX = 27


# scalar numeric helpers: R's round(), zapsmall(), quantile(type = 7)
def r_round(x, digits=0):
    """R's ``round(x, digits)`` (R >= 4.0.0 "measure the nearest" algorithm).

    Both candidates ``floor(x*10^d)/10^d`` and ``ceil(x*10^d)/10^d`` are
    computed in double precision and the one nearer to ``x`` wins; exact ties
    go to the even candidate.  Non-integer ``digits`` are rounded first.
    Works elementwise on arrays; NaN/Inf pass through.
    """
    arr = np.asarray(x, dtype=float)
    out = np.array([_fround(v, digits) for v in arr.ravel()]).reshape(arr.shape)
    return out if arr.ndim else float(out)


def _fround(x, digits):
    if not math.isfinite(x) or x == 0.0 or digits > 323:
        return x
    if digits == 0:
        return float(np.rint(x))
    if digits < -308:
        return 0.0
    dig = int(math.floor(digits + 0.5))
    sgn = -1.0 if x < 0 else 1.0
    x = abs(x)
    if math.log10(2) * (0.5 + (math.frexp(x)[1] - 1)) + dig > 15:
        return sgn * x  # more digits asked for than a double holds
    pow10 = 10.0 ** dig if dig >= 0 else 1.0 / 10.0 ** (-dig)
    x10 = x * pow10
    i10 = math.floor(x10)
    xd, xu = i10 / pow10, math.ceil(x10) / pow10
    du, dd = xu - x, x - xd
    return sgn * (xu if (du < dd or (i10 % 2 == 1 and du == dd)) else xd)


def zapsmall(x, digits=7):
    """R's ``zapsmall(x, digits)``: ``round(x, digits - log10(max|x|))``."""
    x = np.asarray(x, dtype=float)
    ok = ~np.isnan(x)
    if not ok.any():
        return x
    mx = np.max(np.abs(x[ok]))
    return r_round(x, max(0.0, digits - math.log10(mx)) if mx > 0 else digits)


def quantile7(x, probs=(0.0, 0.25, 0.5, 0.75, 1.0)):
    """R's ``quantile(x, probs, type = 7)`` (NaN removed, as ``na.rm=TRUE``)."""
    x = np.sort(np.asarray(x, dtype=float)[~np.isnan(np.asarray(x, float))])
    index = 1 + max(len(x) - 1, 0) * np.asarray(probs, float)
    lo, hi = np.floor(index).astype(int), np.ceil(index).astype(int)
    qs = x[lo - 1].copy()
    h = index - lo
    i = (index > lo) & (x[hi - 1] != qs)
    qs[i] = (1 - h[i]) * qs[i] + h[i] * x[hi[i] - 1]
    return qs


# formatReal: R's format() / print() of a numeric vector
def _scientific(r, digits):
    """R's ``scientific()``: for ``r = |x| > 0`` return ``(kpower, nsig,
    roundingwidens)`` where ``x`` rounded to ``digits`` significant digits is
    ``alpha * 10^kpower`` (1 <= alpha < 10) and ``nsig`` is the number of
    significant digits left after dropping trailing zeros of alpha."""
    if digits >= 16:  # R switches to sprintf("%#.*e") for digits > DBL_DIG
        s = "%#.*e" % (digits - 1, r)
        mant, expo = s.split("e")
        return int(expo), max(1, len(mant.replace(".", "").rstrip("0"))), False
    kp = math.floor(math.log10(r)) - digits + 1
    # scale to a `digits`-digit integer in long double, like R does
    r_prec = _LD(r)
    if 0 < kp <= _KP_MAX:
        r_prec /= _TBL[kp]
    elif -_KP_MAX <= kp < 0:
        r_prec *= _TBL[-kp]
    elif kp != 0:
        r_prec /= np.power(_LD(10), _LD(kp))
    if r_prec < _TBL[digits - 1]:
        r_prec *= 10
        kp -= 1
    alpha = float(np.rint(r_prec))  # round half even, like nearbyintl
    nsig = digits
    for _ in range(digits):  # drop trailing zeros
        alpha /= 10.0
        if alpha == math.floor(alpha):
            nsig -= 1
        else:
            break
    if nsig == 0:  # alpha rounded up to 10^digits
        nsig, kp = 1, kp + 1
    kpower = kp + digits - 1
    # 9996 with 3 digits is 1e+04 in scientific but stays 9996 in fixed
    rgt = min(max(digits - kpower, 0), _KP_MAX)
    fuzz = 0.5 / float(_TBL[rgt])
    widens = 0 < kpower <= _KP_MAX and _LD(r) < _TBL[kpower] - _LD(fuzz)
    return kpower, nsig, bool(widens)


def _format_real_params(x, na, digits, nsmall=0):
    """R's ``formatReal``: common ``(w, d, e)`` for finite values of ``x``.

    Fixed notation with ``rgt`` decimals (the max over elements of the
    decimals needed to show each value with <= ``digits`` significant digits)
    is used whenever its width is <= the width of scientific notation with
    the max number of significant digits (``scipen = 0``).
    """
    neg, big = 0, 10 ** 6  # R uses INT_MIN / INT_MAX as starting values
    mxl = rgt = mxsl = mxns = -big
    mnl = big
    flags = set()
    for v, is_na in zip(x, na):
        if is_na:
            flags.add("NA")
        elif math.isnan(v):
            flags.add("NaN")
        elif math.isinf(v):
            flags.add("Inf" if v > 0 else "-Inf")
        else:
            neg_i = int(v < 0)
            if v == 0:
                kpower, nsig, widens = 0, 1, False
            else:
                kpower, nsig, widens = _scientific(abs(v), digits)
            left = kpower + 1 - int(widens)      # digits left of "."
            sleft = neg_i + (1 if left <= 0 else left)
            right = nsig - left                  # digits right of "."
            neg = neg or neg_i
            rgt, mxl, mnl = max(rgt, right), max(mxl, left), min(mnl, left)
            mxsl, mxns = max(mxsl, sleft), max(mxns, nsig)
    if mxns == -big:  # nothing finite
        w, d, e = 0, 0, 0
    else:
        if mxl < 0:
            mxsl = 1 + neg  # leading "0"
        rgt = max(rgt, 0)
        w_fixed = mxsl + rgt + (rgt != 0)
        e = 2 if (mxl > 100 or mnl <= -99) else 1  # 3-digit exponent
        d = mxns - 1
        w = neg + (d > 0) + d + 4 + e               # width in E format
        if w_fixed <= w:  # fixed notation if not wider (scipen = 0)
            e = 0
            rgt = max(rgt, nsmall)  # nsmall only *after* the choice
            d, w = rgt, mxsl + rgt + (rgt != 0)
    widths = {"NA": 2, "NaN": 3, "Inf": 3, "-Inf": 4}
    w = max([w] + [widths[f] for f in flags])
    return w, d, e


def _encode_real(v, is_na, w, d, e):
    """R's ``encodeReal0``: one value in the common format."""
    if is_na:
        s = "NA"
    elif math.isnan(v):
        s = "NaN"
    elif math.isinf(v):
        s = "Inf" if v > 0 else "-Inf"
    elif e:
        s = ("%#.*e" if d else "%.*e") % (d, v + 0.0)
    else:
        s = "%.*f" % (d, v + 0.0)  # +0.0 turns -0 into 0
    return s.rjust(w)


def format_num(x, digits=7, nsmall=0, width=None, na=None):
    """R's ``format(x, digits = digits, nsmall = nsmall, width = width)``.

    Parameters
    ----------
    x : sequence of float
        Values; ``None``/``pandas.NA`` print as ``NA``, ``nan`` as ``NaN``.
    digits : int
        Significant digits (R's ``digits``, 1..22).
    nsmall : int
        Minimum number of decimals in fixed notation.
    width : int, optional
        Minimum common width.
    na : sequence of bool, optional
        Extra mask of elements to treat as R's ``NA``.

    Returns
    -------
    list of str
        Right-justified strings of a common width.
    """
    items = list(np.ravel(np.asarray(x, dtype=object)))
    isna = [v is None or v is pd.NA for v in items]
    vals = [np.nan if m else float(v) for v, m in zip(items, isna)]
    if na is not None:
        isna = [a or bool(b) for a, b in zip(isna, np.ravel(na))]
    w, d, e = _format_real_params(vals, isna, digits, nsmall)
    w = max(w, width or 0)
    return [_encode_real(v, a, w, d, e) for v, a in zip(vals, isna)]


def format_scalar(x, digits=7, nsmall=0):
    """``format(x, digits=digits, nsmall=nsmall)`` of a single number."""
    return format_num([x], digits=digits, nsmall=nsmall)[0]


# p-values and significance stars
def format_pval(p, digits=5, eps=EPS, na_form="NA"):
    """R's ``format.pval(p, digits, eps)`` (returns a list of str).

    Values ``< eps`` become ``"<2e-16"``-style strings; the others are
    formatted in two groups (fixed if exponent >= -3 or (== -4 and digits > 1),
    else scientific), each group with :func:`format_num`.
    """
    pv = np.asarray(p, dtype=float).ravel()
    out = [na_form] * len(pv)
    idx = [i for i in range(len(pv)) if not math.isnan(pv[i])]
    is0 = [i for i in idx if pv[i] < eps]
    rest = [i for i in idx if pv[i] >= eps]
    if rest:
        expo = [math.floor(math.log10(pv[i] if pv[i] > 0 else 1e-50)) for i in rest]
        fixp = [ex >= -3 or (ex == -4 and digits > 1) for ex in expo]
        for want in (True, False):
            grp = [i for i, f in zip(rest, fixp) if f == want]
            for i, s in zip(grp, format_num(pv[grp], digits=digits)):
                out[i] = s
    if is0:
        dig = max(1, digits - 2)
        if rest:
            nc = max(len(out[i]) for i in rest)
            if dig > 1 and dig + 6 > nc:
                dig = max(1, nc - 7)
            sep = "" if dig == 1 and nc <= 6 else " "
        else:
            sep = "" if dig == 1 else " "
        for i in is0:
            out[i] = "<" + sep + format_scalar(eps, dig)
    return out


def signif_stars(p):
    """``symnum`` codes of printCoefmat: [0,.001] '***', (.001,.01] '**',
    (.01,.05] '*', (.05,.1] '.', (.1,1] ' '; NA gives ''."""
    out = []
    for v in np.asarray(p, dtype=float).ravel():
        if math.isnan(v):
            out.append("")
        else:
            out.append(next(s for c, s in ((.001, "***"), (.01, "**"), (.05, "*"),
                                           (.1, "."), (math.inf, " ")) if v <= c))
    return out


# character matrices: print.default(<character matrix>, quote = FALSE)
def format_matrix(table, right=True, row_names=True, width=80):
    """R's print of a character matrix / data frame with ``quote = FALSE``.

    Row names are left-justified; cells and column headers are
    right-justified (``right=True``, as for data frames and printCoefmat) or
    left-justified (``right=False``, R's default for matrices).  Each column
    is preceded by one space; columns that do not fit in ``width`` (80)
    characters continue in a further block, as R does.
    """
    cells = [["NA" if (v is None or (isinstance(v, float) and v != v)) else str(v)
              for v in row] for row in table.itertuples(index=False)]
    cols = [str(c) for c in table.columns]
    rows = [str(r) for r in table.index] if row_names else [""] * len(cells)
    rlabw = max([len(r) for r in rows], default=0)
    w = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(cols)]
    just = str.rjust if right else str.ljust
    lines, jmin = [], 0
    while jmin < len(cols):
        tot, jmax = rlabw + w[jmin] + 1, jmin + 1
        while jmax < len(cols) and tot + w[jmax] + 1 < width:
            tot, jmax = tot + w[jmax] + 1, jmax + 1
        lines.append(" " * rlabw + "".join(" " + just(cols[j], w[j])
                                           for j in range(jmin, jmax)))
        for r, row in zip(rows, cells):
            lines.append(r.ljust(rlabw) + "".join(" " + just(row[j], w[j])
                                                  for j in range(jmin, jmax)))
        jmin = jmax
    return "\n".join(lines)


# printCoefmat
def print_coefmat(table, digits=5, signif_stars=True, signif_legend=None,
                  dig_tst=None, cs_ind=None, tst_ind=None, zap_ind=(),
                  p_values=None, has_pvalue=None, eps_pvalue=EPS,
                  na_print="NA", width=80):
    """R's ``printCoefmat``: the coefficient table of summary.lm/glm/merMod.

    Parameters
    ----------
    table : pandas.DataFrame
        Numeric table; index = row names, columns = headers.  NaN is ``NA``.
    digits : int
        R's ``digits`` (summary.lm and lme4 pass 4; anova passes 5).
    signif_stars, signif_legend : bool
        Add the stars column (only if some p < 0.1) and the legend lines.
    dig_tst : int, optional
        Decimals of the statistic columns, default ``max(1, min(5, digits-1))``.
    cs_ind, tst_ind, zap_ind : sequence of int, optional
        0-based columns: coefficient-like columns (default: the ``k`` columns
        before the statistic, e.g. Estimate, Std. Error and lmerTest's df --
        rounded and formatted *together*, so they share their decimals),
        statistic columns (default: column ``k``), columns to ``zapsmall``.
    p_values, has_pvalue : bool, optional
        Whether the last column holds p-values (default: its name starts with
        ``"Pr("`` or ``"p-v"``) and whether to show it.
    eps_pvalue : float
        p-values below it print as ``<2e-16``.
    na_print : str
        Text for NA cells (print.anova uses ``""``).
    width : int
        Line width for wrapping columns.

    Returns
    -------
    str
        The printed block, legend included, without a trailing newline.
    """
    cn = [str(c) for c in table.columns]
    xm = table.to_numpy(dtype=float).copy()
    nr, nc = xm.shape
    if has_pvalue is None:
        has_pvalue = nc >= 4 and cn[-1][:3] in ("Pr(", "p-v")
    if p_values is None:
        p_values = has_pvalue
    elif p_values and not has_pvalue:
        raise LmmError("'p_values' is True, but 'has_pvalue' is not")
    if has_pvalue and not p_values:  # p-values present but not wanted
        xm, cn, nc, has_pvalue = xm[:, :-1], cn[:-1], nc - 1, False
    if dig_tst is None:
        dig_tst = max(1, min(5, digits - 1))
    k = nc - has_pvalue - (1 if tst_ind is None else len(tst_ind))
    cs_ind = list(range(k)) if cs_ind is None else list(cs_ind)
    tst_ind = [k] if tst_ind is None else list(tst_ind)
    cf = np.full((nr, nc), "", dtype=object)
    ina = np.isnan(xm)
    ok = ~ina
    for i in zap_ind:  # zap before deciding any formats
        xm[:, i] = zapsmall(xm[:, i], digits)
    if cs_ind:
        acs = np.abs(xm[:, cs_ind])
        fin = np.isfinite(acs)
        if fin.any():
            nz = acs[fin & (acs != 0)]
            # digits before the decimal point of the smallest |coef|, |se|
            digmin = 1 + (math.floor(math.log10(nz.min())) if nz.size else 0)
            cf[:, cs_ind] = _fmt_na(r_round(xm[:, cs_ind], max(1, digits - digmin)), digits)
    if tst_ind:
        cf[:, tst_ind] = _fmt_na(r_round(xm[:, tst_ind], dig_tst), digits)
    for i in range(nc):  # any other column on its own, e.g. anova's Df
        if i not in cs_ind and i not in tst_ind and not (has_pvalue and i == nc - 1):
            cf[:, i] = _fmt_na(xm[:, i], digits)
    ok[:, tst_ind] = False
    okp = ok[:, :-1] if has_pvalue else ok
    sub_x, sub_c = (xm[:, :-1], cf[:, :-1]) if has_pvalue else (xm, cf)
    # a non-zero value that was rounded to "0.000" gets formatted on its own
    fix = [(i, j) for i, j in zip(*np.nonzero(okp)) if _shows_zero(sub_c[i, j]) is not None
           and (sub_x[i, j] == 0) != _shows_zero(sub_c[i, j])]
    if fix:
        for (i, j), s in zip(fix, format_num([sub_x[i, j] for i, j in fix],
                                             max(1, digits - 1))):
            cf[i, j] = s
    cf[ina] = na_print
    stars = False
    if p_values:
        okpv = ok[:, -1]
        if okpv.any():
            pv = xm[:, -1]
            for i, s in zip(np.nonzero(okpv)[0], format_pval(pv[okpv], dig_tst, eps_pvalue)):
                cf[i, -1] = s
            stars = signif_stars and bool((pv[okpv] < .1).any())
            if stars:
                codes = _signif_codes(pv)
                wid = max(len(c) for c in codes)
                cf = np.column_stack([cf, [c.ljust(wid) for c in codes]])
                cn = cn + [""]
    out = format_matrix(pd.DataFrame(cf, index=[str(r) for r in table.index], columns=cn),
                        right=True, width=width)
    if stars and (signif_legend is None or signif_legend):
        out += "\n---\n" + SIGNIF_LEGEND
    return out


_signif_codes = signif_stars  # the argument of print_coefmat shadows the name


def _fmt_na(block, digits):
    """format() of a numeric block whose NaNs are R's NA (width 2, not 3)."""
    flat = np.ravel(block)
    return np.array(format_num(flat, digits, na=np.isnan(flat))).reshape(np.shape(block))


def _shows_zero(s):
    try:
        return float(s) == 0
    except ValueError:
        return None


# named vectors and residual quantiles
def print_named_vector(values, digits=7, width=80):
    """R's ``print(<named numeric vector>, digits = digits)``.

    All values share one format; every name is right-justified over its value
    and every field is followed by one space (so lines end with a space).
    """
    s = pd.Series(values, dtype=float) if isinstance(values, dict) else pd.Series(values)
    names = [str(n) for n in s.index]
    vals = format_num(s.to_numpy(dtype=float), digits)
    w = max([len(v) for v in vals] + [len(n) for n in names])
    per = max(1, width // (w + 1))
    lines = []
    for i in range(0, len(vals), per):
        lines.append("".join(n.rjust(w) + " " for n in names[i:i + per]))
        lines.append("".join(v.rjust(w) + " " for v in vals[i:i + per]))
    return "\n".join(lines)


def format_quantiles(resid, digits=4, zap=True):
    """The two lines ``summary.lm`` / lme4 print for residual quantiles.

    ``zapsmall(quantile(resid), digits + 1)`` (skip with ``zap=False``),
    named Min 1Q Median 3Q Max, printed with ``digits``.
    """
    q = quantile7(resid)
    if zap:
        q = zapsmall(q, digits + 1)
    return print_named_vector(dict(zip(["Min", "1Q", "Median", "3Q", "Max"], q)), digits)


# lme4 blocks
def abbreviate(names, minlength=4):
    """R's ``abbreviate(names, minlength)`` (left.kept, use.classes=TRUE).

    Drop from the right: lower-case vowels ending a word, other lower-case
    vowels, lower-case letters ending a word, other lower-case letters, then
    any character -- never the first character of a word -- until
    ``minlength`` is reached; lengthen ``minlength`` for duplicates.
    """
    names = [str(n).strip(" ") for n in names]
    uniq = list(dict.fromkeys(names))
    x = list(uniq)
    todo = [True] * len(uniq)
    while True:
        for i in range(len(uniq)):
            if todo[i]:
                x[i] = _stripchars(uniq[i], minlength)
        dup = [x[i] in x[:i] for i in range(len(x))]
        if not any(dup):
            break
        minlength += 1
        dvals = {x[i] for i in range(len(x)) if dup[i]}
        todo = [d or v in dvals for d, v in zip(dup, x)]
    m = dict(zip(uniq, x))
    return [m[n] for n in names]


def _stripchars(s, minlen):
    s = list(s)
    if len(s) < minlen:
        return "".join(s)
    first = lambda i: s[i - 1].isspace()  # noqa: E731
    last = lambda i: not s[i - 1].isspace() and (i + 1 == len(s) or s[i + 1].isspace())  # noqa
    # trailing blanks were stripped; inner blanks count as word boundaries
    nspace = sum(c.isspace() for c in s[1:])
    passes = [lambda i: s[i] in "aeiou" and last(i),
              lambda i: s[i] in "aeiou" and not first(i),
              lambda i: s[i].islower() and last(i),
              lambda i: s[i].islower() and not first(i),
              lambda i: not first(i) and not s[i].isspace()]
    done = len(s) - nspace <= minlen
    for drop in passes:
        if done:
            break
        for i in range(len(s) - 1, 0, -1):
            if i < len(s) and drop(i):
                del s[i]
            if len(s) - nspace <= minlen:
                done = True
                break
    if len(s) > minlen:
        s = [s[0]] + [c for c in s[1:] if not c.isspace()]
    return "".join(s)


def format_varcorr(rows, digits=4, comp=("Variance", "Std.Dev.")):
    """lme4's ``formatVC`` table as printed by ``print(summary(<lmer>))``.

    Parameters
    ----------
    rows : list of dict
        One dict per line: ``group``, ``name``, ``sd``, optional
        ``variance`` (default ``sd**2``, which is what lme4 prints) and
        ``corr``: correlations with the previous rows of the same term (empty
        for a term's first row, so a non-empty ``corr`` continues a term).
        The residual line is ``{"group": "Residual", "name": "", "sd": s}``.
    digits : int
        ``summary`` passes 4; Variance and Std.Dev. are each formatted as a
        whole column with ``format(digits=)``; correlations with
        ``format(round(C, d), nsmall=d)``, ``d = max(2, digits - 2)``, per term.
    comp : tuple of str
        Which of "Variance", "Std.Dev." to show.

    Returns
    -------
    str
        The table (header line + rows, left-justified), without the
        "Random effects:" title.
    """
    terms = []  # list of lists of row indices
    for i, r in enumerate(rows):
        if r.get("corr") and terms:
            terms[-1].append(i)
        else:
            terms.append([i])
    sd = np.array([r["sd"] for r in rows], dtype=float)
    var = np.array([r.get("variance", r["sd"] ** 2) for r in rows], dtype=float)
    table = {"Groups": ["" for _ in rows], "Name": [r.get("name", "") for r in rows]}
    for t in terms:
        table["Groups"][t[0]] = rows[t[0]]["group"]
    if "Variance" in comp:
        table["Variance"] = format_num(var, digits)
    if "Std.Dev." in comp:
        table["Std.Dev."] = format_num(sd, digits)
    cols = [[c, v] for c, v in table.items()]
    maxlen = max(len(t) for t in terms)
    if maxlen > 1:
        dig = max(2, digits - 2)
        corr = [[""] * (maxlen - 1) for _ in rows]
        for t in terms:
            p = len(t)
            full = np.eye(p)
            for a in range(1, p):
                for b, c in enumerate(rows[t[a]]["corr"][:a]):
                    full[a, b] = full[b, a] = c
            txt = np.array(format_num(r_round(full, dig).ravel(), nsmall=dig)).reshape(p, p)
            for a in range(1, p):
                for b in range(a):
                    corr[t[a]][b] = txt[a, b]
        for j in range(maxlen - 1):
            cols.append(["Corr" if j == 0 else "", [c[j] for c in corr]])
    df = pd.DataFrame({i: v for i, (_, v) in enumerate(cols)}, index=[""] * len(rows))
    df.columns = [c for c, _ in cols]
    return format_matrix(df, right=False)


def format_fixef_corr(corr, names):
    """lme4's "Correlation of Fixed Effects:" table (without the title).

    ``format(round(C, 3), nsmall = 3)`` over the whole matrix, upper triangle
    and diagonal blanked, first row and last column dropped; row names
    ``abbreviate(names, 11)``, column names ``abbreviate(names, 6)``, printed
    left-justified.
    """
    c = np.asarray(corr, dtype=float)
    p = c.shape[0]
    txt = np.array(format_num(r_round(c, 3).ravel(), nsmall=3)).reshape(p, p)
    txt[np.triu_indices(p)] = ""
    df = pd.DataFrame(txt[1:, :-1], index=abbreviate(names, 11)[1:])
    df.columns = abbreviate(names, 6)[:-1]
    return format_matrix(df, right=False)
