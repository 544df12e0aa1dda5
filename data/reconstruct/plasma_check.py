#!/usr/bin/env python
"""Count the published plasma numbers reproduced in the *printed* output of
R (lme4 1.1.31 + lmerTest, via Rscript) and of lmmlite, for data/plasma.csv.

    python data/reconstruct/plasma_check.py        (from the repository root)

Each published output line of the slides is compared number by number with
the same line of the printed output (same section, same row label).
"""
import io
import re
import subprocess
import sys
import warnings
from contextlib import redirect_stdout

# (section, row label or header, published numbers of that line)
PUB = [
    ("m0", "Residuals:", "-42.492 -12.643 -0.968 9.998 50.981"),
    ("m0", "(Intercept)", "126.7136 10.0424 12.618 3.68e-15"),
    ("m0", "age", "1.3124 0.2619 5.011 1.28e-05"),
    ("m0", "Residual standard error:", "19.55 38"),
    ("m0", "Multiple R-squared:", "0.3979 0.3821"),
    ("m0", "F-statistic:", "25.11 1 38 1.282e-05"),
    ("m1", "Residuals:", "-16.849 -8.185 0.786 6.618 17.656"),
    ("m1", "(Intercept)", "303.4541 15.9759 18.994 2e-16"),
    ("m1", "age", "-1.9022 0.3042 -6.254 3.58e-07"),
    ("m1", "group2", "-110.9344 9.7480 -11.380 2.59e-13"),
    ("m1", "group3", "-82.1424 7.4540 -11.020 6.29e-13"),
    ("m1", "group4", "-44.7618 5.3530 -8.362 7.33e-10"),
    ("m1", "Residual standard error:", "9.24 35"),
    ("m1", "Multiple R-squared:", "0.8762 0.862"),
    ("m1", "F-statistic:", "61.92 4 35 2.173e-15"),
    ("mm", "REML criterion at convergence:", "304.1"),
    ("mm", "Scaled residuals:", "-1.75481 -0.89181 0.09125 0.70848 1.85339"),
    ("mm", "group (Intercept)", "2224.44 47.164"),
    ("mm", "Residual", "85.47 9.245"),
    ("mm", "(Intercept)", "241.3334 26.0615 9.260"),
    ("mm", "age", "-1.8293 0.3014 -6.068"),
    ("mm", "age (corr)", "-0.422"),
    ("mmT", "(Intercept)", "241.3334 26.0615 4.2275 9.260 0.00058"),
    ("mmT", "age", "-1.8293 0.3014 36.1653 -6.068 5.54e-07"),
    ("fx", "fixef", "241.333393 -1.829255"),
    ("fx", "1", "58.13116"),
    ("fx", "2", "-50.26973"),
    ("fx", "3", "-22.21498"),
    ("fx", "4", "14.35354"),
    ("mm2", "REML criterion at convergence:", "302.9"),
    ("mm2", "Scaled residuals:", "-1.5822 -0.8157 0.2107 0.7805 1.6553"),
    ("mm2", "group (Intercept)", "4113.8342 64.1392"),
    ("mm2", "age", "0.3925 0.6265 -0.67"),
    ("mm2", "Residual", "77.1173 8.7816"),
    ("mm2", "(Intercept)", "249.2426 34.0378 7.323"),
    ("mm2", "age (fixef)", "-1.9862 0.4373 -4.542"),
    ("mm2", "age (corr)", "-0.682"),
]

R_CODE = r'''
suppressMessages({library(lme4); library(lmerTest)})
df <- read.csv("data/plasma.csv"); df$group <- factor(df$group)
cat("@@m0\n"); print(summary(lm(conc ~ age, data = df)))
cat("@@m1\n"); print(summary(lm(conc ~ age + group, data = df)))
mm <- lme4::lmer(conc ~ age + (1 | group), data = df)
cat("@@mm\n"); print(summary(mm))
cat("@@mmT\n"); print(summary(lmerTest::lmer(conc ~ age + (1 | group), data = df), ddf = "Satterthwaite"))
cat("@@fx\n"); print(fixef(mm)); print(ranef(mm))
cat("@@mm2\n"); print(summary(lme4::lmer(conc ~ age + (1 + age | group), data = df)))
'''


def lmmlite_text():
    from lmmlite import lm, lmer, fixef, ranef, load
    df = load("plasma")
    buf = io.StringIO()
    with redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        print("@@m0"); print(lm("conc ~ age", df).summary())
        print("@@m1"); print(lm("conc ~ age + group", df).summary())
        mm = lmer("conc ~ age + (1 | group)", df, optimizer="bobyqa")
        print("@@mm"); print(mm.summary())
        print("@@mmT"); print(mm.summary(ddf="Satterthwaite"))
        print("@@fx"); print(fixef(mm)); print(ranef(mm))
        print("@@mm2"); print(lmer("conc ~ age + (1 + age | group)", df, optimizer="bobyqa").summary())
    return buf.getvalue()


NUM = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?,?$")


def nums(line):
    return [t.rstrip(",") for t in line.replace("<", " ").split() if NUM.match(t)]


def find(sec_lines, label):
    """The printed numbers of the line for `label` in one section."""
    L = [l.rstrip() for l in sec_lines]
    strip = lambda l: l.strip()  # noqa: E731
    if label in ("Residuals:", "Scaled residuals:"):
        i = next(i for i, l in enumerate(L) if strip(l) == label)
        return nums(L[i + 2])
    if label == "age (corr)":
        i = next(i for i, l in enumerate(L) if strip(l).startswith("Correlation of Fixed"))
        return nums(L[i + 2])
    if label == "fixef":
        i = next(i for i, l in enumerate(L) if strip(l).startswith("(Intercept)") and "age" in l)
        return nums(L[i + 1])
    if label in ("1", "2", "3", "4"):
        i = next(i for i, l in enumerate(L) if strip(l) == "$group")
        return nums(next(l for l in L[i:] if strip(l).split()[:1] == [label])[1:])
    fe = next((i for i, l in enumerate(L) if strip(l).startswith("Fixed effects")), len(L))
    if label in ("(Intercept)", "age (fixef)") or (label == "age" and not any("Corr" in l for l in L[:fe])):
        key = label.split()[0]
        start = next((i for i, l in enumerate(L) if strip(l).startswith("Coefficients")), fe)
        return nums(next(l for l in L[start:] if strip(l).split()[:1] == [key])[len(key) + 1:])
    if label in ("group (Intercept)", "Residual", "age"):
        i = next(i for i, l in enumerate(L) if strip(l).startswith("Groups"))
        key = label.split()
        ln = next(l for l in L[i:fe] if strip(l).split()[:len(key)] == key)
        return nums(ln)
    ln = next(l for l in L if strip(l).startswith(label))
    return nums(ln[len(ln) - len(ln.lstrip()) + len(label):])


def compare(text):
    secs, cur = {}, None
    for l in text.splitlines():
        if l.startswith("@@"):
            cur = l[2:].strip()
            secs[cur] = []
        elif cur:
            secs[cur].append(l)
    rows = []
    for sec, label, pub in PUB:
        try:
            got = find(secs[sec], label)
        except StopIteration:
            got = []
        p = pub.split()
        got = (got + ["?"] * len(p))[:len(p)]
        rows.append((sec, label, p, got))
    return rows


def main():
    rtxt = subprocess.run(["Rscript", "-e", R_CODE], capture_output=True, text=True).stdout
    ltxt = lmmlite_text()
    R, L = compare(rtxt), compare(ltxt)
    nr = nl = tot = 0
    print(f"{'section':5s} {'line':32s} {'published':>11s} {'R':>11s} {'lmmlite':>11s}")
    for (sec, label, p, gr), (_, _, _, gl) in zip(R, L):
        for a, b, c in zip(p, gr, gl):
            tot += 1
            nr += a == b
            nl += a == c
            flag = "" if a == b == c else "  <-- miss"
            print(f"{sec:5s} {label:32s} {a:>11s} {b:>11s} {c:>11s}{flag}")
    print(f"\nnumbers matched: R {nr}/{tot}, lmmlite {nl}/{tot}")
    return nr, nl, tot


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
