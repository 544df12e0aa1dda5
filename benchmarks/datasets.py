"""Data for the benchmark models: shipped CSVs and fixed-seed simulations."""

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent.parent / "data"


def sleepstudy():
    d = pd.read_csv(DATA / "sleepstudy.csv")
    d["Subject"] = d["Subject"].astype(str)
    return d


def sleepstudy_day2():
    d = sleepstudy()
    return d[d["Days"] >= 2].reset_index(drop=True)


def clinics_nested():
    d = pd.read_csv(DATA / "clinics_nested.csv")
    d["region"] = d["region"].astype(str)
    d["clinic"] = d["clinic"].astype(str)
    return d[["region", "clinic", "x", "y"]]


def crossed_slopes(seed=20240501, nclinic=30, ndoctor=25, per=2):
    """30 clinics x 25 doctors x 2 patients = 1,500 rows, for
    y ~ x + (x | clinic) + (1 | doctor)."""
    rng = np.random.default_rng(seed)
    cov = np.array([[6.0 ** 2, 0.3 * 6.0 * 0.8], [0.3 * 6.0 * 0.8, 0.8 ** 2]])
    bc = rng.multivariate_normal([0.0, 0.0], cov, size=nclinic, method="cholesky")
    bd = rng.normal(0, 4.0, ndoctor)
    clinic = np.repeat(np.arange(nclinic), ndoctor * per)
    doctor = np.tile(np.repeat(np.arange(ndoctor), per), nclinic)
    x = rng.uniform(0, 10, clinic.size)
    y = 50 + bc[clinic, 0] + bd[doctor] + (2.0 + bc[clinic, 1]) * x + rng.normal(0, 3.0, x.size)
    return pd.DataFrame({"clinic": [f"c{k + 1:02d}" for k in clinic],
                         "doctor": [f"d{k + 1:02d}" for k in doctor],
                         "x": x, "y": y})


def insteval_like(seed=20240502, ns=2972, nd=1128, ndept=14, n=73421):
    """Simulated data with InstEval's shape: 73,421 ratings of 1,128 lecturers
    (d, each in one of 14 departments) by 2,972 students (s); service is a
    0/1 factor.  Standard deviations roughly those of the lme4 fit to InstEval
    (s 0.32, d 0.52, dept 0.08, residual 1.18).  Every level occurs."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([np.arange(ns), rng.integers(0, ns, n - ns)])
    d = np.concatenate([np.arange(nd), rng.integers(0, nd, n - nd)])
    rng.shuffle(s)
    rng.shuffle(d)
    d_dept = np.concatenate([np.arange(ndept), rng.integers(0, ndept, nd - ndept)])
    dept = d_dept[d]
    service = rng.integers(0, 2, n)
    y = (3.2 - 0.07 * service + rng.normal(0, 0.32, ns)[s] + rng.normal(0, 0.52, nd)[d]
         + rng.normal(0, 0.08, ndept)[dept] + rng.normal(0, 1.18, n))
    return pd.DataFrame({
        "s": pd.Categorical(s + 1),
        "d": pd.Categorical(d + 1),
        "dept": pd.Categorical(dept + 1),
        "service": pd.Categorical(service),
        "y": y,
    })


# MovieLens-1M (ml-1m) shape: 6,040 users, 3,706 rated movies, 1,000,209 ratings;
# every user has >= 20 ratings (median 96, max 2,314), item counts run from 1 to 3,428.
ML_USERS, ML_ITEMS, ML_MIN_PER_USER = 6040, 3706, 20


def _user_counts(rng, n_rows, n_users, n_items):
    """Ratings per user: a floor of 20 (ml-1m's rule) plus a heavy-tailed
    multinomial share of the rest, with gamma(0.6) weights (at 1M rows: median
    about 100, 10% / 90% / max about 25 / 400 / 2,000, near ml-1m's 23 / 400 /
    2,314), capped at n_items (a user rates an item at most once)."""
    floor = min(ML_MIN_PER_USER, n_rows // n_users)
    weights = rng.gamma(0.6, 1.0, n_users)
    counts = np.full(n_users, floor)
    rest = n_rows - counts.sum()
    while rest > 0:                        # re-share what the cap cut off
        open_ = counts < n_items
        p = np.where(open_, weights, 0.0)
        counts += rng.multinomial(rest, p / p.sum())
        np.minimum(counts, n_items, out=counts)
        rest = n_rows - counts.sum()
    return counts


def _items_for_users(rng, counts, item_w):
    """For each user u, counts[u] distinct items drawn without replacement
    with probabilities proportional to item_w (successive sampling): the first
    k distinct values of i.i.d. draws from item_w have exactly that law.  A user
    with more than 60 % of the items takes numpy's ``choice(replace=False, p=)``
    (the same law, renormalized over the items left after each batch), which does
    not wait for the rare items to come up."""
    p = item_w / item_w.sum()
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    picks = []
    for k in counts:
        if k > 0.6 * len(item_w):
            picks.append(rng.choice(len(item_w), size=k, replace=False, p=p))
            continue
        got = np.empty(0, dtype=np.int64)
        while got.size < k:
            draws = np.searchsorted(cdf, rng.random(2 * (k - got.size) + 16), side="right")
            both = np.concatenate([got, draws])
            _, first = np.unique(both, return_index=True)
            got = both[np.sort(first)][:k]
        picks.append(got)
    return np.concatenate(picks)


def _cover_every_item(rng, item, n_items):
    """Move one rating of an item rated more than once to each item nobody
    rated, so that all n_items levels occur.  Nobody rated the new item, so
    the moved rating cannot duplicate a (user, item) pair."""
    counts = np.bincount(item, minlength=n_items)
    rows = iter(rng.permutation(item.size))
    for j in np.flatnonzero(counts == 0):
        r = next(r for r in rows if counts[item[r]] > 1)
        counts[item[r]] -= 1
        item[r] = j
        counts[j] = 1
    return item


def movielens_like(n_rows=1_000_000, seed=20240503, n_users=ML_USERS, n_items=ML_ITEMS):
    """Simulated ratings with MovieLens-1M's shape, for
    ``y ~ x + (1 | user) + (1 | item)``.

    Every one of the ``n_users`` users and ``n_items`` items occurs; each user
    rates at least 20 items (``min(20, n_rows // n_users)`` when ``n_rows`` is
    small) and at most once per item; per-user counts are heavy-tailed
    (gamma(0.6) weights) and so is item popularity (lognormal weights,
    sigma 1.6).  With the defaults the counts resemble ml-1m's
    (user median about 100, maximum a few thousand; item counts from a handful
    to a few thousand).

    The response is ml-1m-like *integer* stars: a latent
    ``3.6 + 0.15 x + u_user + v_item + e`` with sd(u) = 0.45, sd(v) = 0.5,
    sd(e) = 0.95, rounded and clipped to 1..5 (stored as float).  ``x`` is a
    standard-normal covariate.  Rows are ordered by user, as ml-1m's file.

    Returns a DataFrame with columns y, x, user, item (user and item are
    categoricals with string labels "u1".., "i1"..).
    """
    if n_rows < max(n_users, n_items):
        raise ValueError(f"n_rows={n_rows} must be at least n_users={n_users} "
                         f"and n_items={n_items} (every level occurs)")
    if n_rows > n_users * n_items:
        raise ValueError(f"n_rows={n_rows} exceeds n_users * n_items (one rating per pair)")
    rng = np.random.default_rng(seed)
    counts = _user_counts(rng, n_rows, n_users, n_items)
    item_w = rng.lognormal(0.0, 1.6, n_items)
    user = np.repeat(np.arange(n_users), counts)
    item = _cover_every_item(rng, _items_for_users(rng, counts, item_w), n_items)
    x = rng.standard_normal(n_rows)
    latent = (3.6 + 0.15 * x + rng.normal(0, 0.45, n_users)[user]
              + rng.normal(0, 0.5, n_items)[item] + rng.normal(0, 0.95, n_rows))
    y = np.clip(np.rint(latent), 1, 5)
    labels = lambda p, n: [f"{p}{k + 1}" for k in range(n)]  # noqa: E731
    return pd.DataFrame({
        "y": y,
        "x": x,
        "user": pd.Categorical.from_codes(user, labels("u", n_users)),
        "item": pd.Categorical.from_codes(item, labels("i", n_items)),
    })


def movielens_200k():
    """movielens_like with 200,000 rows: the same 6,040 users (>= 20 ratings each)
    and 3,706 items, fewer ratings per user (median 27).  lme4's sparse factor of the
    9,746 random effects fills in: it needs over half an hour here (see
    movielens_100k_200k for a 200k-row model it finishes)."""
    return movielens_like(200_000)


def movielens_100k_200k():
    """movielens_like with MovieLens-100k's 943 users and 1,682 items but 200,000 rows
    (per user median ~120, at most all 1,682): a 200k-row crossed model whose
    smaller dense block lme4 can factor in reasonable time."""
    return movielens_like(200_000, n_users=943, n_items=1682)


def movielens_1m():
    """movielens_like with ml-1m's size (1,000,000 rows)."""
    return movielens_like(1_000_000)
