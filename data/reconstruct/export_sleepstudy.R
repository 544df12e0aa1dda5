#!/usr/bin/env Rscript
# Export lme4's `sleepstudy` data set (Belenky et al. 2003, as shipped with the
# Debian package r-cran-lme4) to data/sleepstudy.csv so that Python users never
# need R.
#
# Usage (from the repository root):
#     Rscript data/reconstruct/export_sleepstudy.R
#
# Columns: Reaction (ms, numeric, written at full precision), Days (0..9,
# integer), Subject (the subject label, e.g. 308, as written by write.csv for the
# factor levels).  Row order is the order in lme4 (Subject-major, Days-minor).
suppressPackageStartupMessages(library(lme4))
data("sleepstudy", package = "lme4")
out <- data.frame(Reaction = sleepstudy$Reaction,
                  Days = sleepstudy$Days,
                  Subject = as.character(sleepstudy$Subject))
options(digits = 15)
# write.csv uses up to 15 significant digits, enough to round-trip the values
# stored in lme4 (they have at most 4 decimals).
args <- commandArgs(trailingOnly = TRUE)
dest <- if (length(args) >= 1) args[1] else "data/sleepstudy.csv"
write.csv(out, dest, row.names = FALSE, quote = FALSE)
cat(sprintf("lme4 %s: wrote %d rows to %s\n",
            as.character(packageVersion("lme4")), nrow(out), dest))
