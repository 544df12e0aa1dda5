# Reference values for the R^2 / ICC table of chapters/10-p-values.md, from R's
# performance package (r2_nakagawa, icc) on the same data and models.  Regenerate with
#   Rscript tests/r2_nakagawa_ref.R > tests/golden/r2_nakagawa.json
# (run from the repository root; needs lme4 and performance).
suppressPackageStartupMessages({library(lme4); library(performance)})
plasma <- read.csv("data/plasma.csv"); plasma$group <- factor(plasma$group)
sex <- read.csv("data/sleepstudy_sex.csv"); sex$Subject <- factor(sex$Subject)
sleepall <- subset(sleepstudy, Days >= 2); sleepall$Days <- sleepall$Days - 2
sleepall <- merge(sleepall, sex, by = "Subject")
fits <- list(
  "plasma mm" = lmer(conc ~ age + (1 | group), data = plasma),
  "sleepstudy fm" = lmer(Reaction ~ Days + (1 + Days | Subject), data = sleepstudy),
  "workflow full" = lmer(Reaction ~ Days + sex + (1 + Days | Subject), data = sleepall))
rows <- sapply(names(fits), function(name) {
  r2 <- r2_nakagawa(fits[[name]]); ic <- icc(fits[[name]])
  sprintf('  "%s": {"R2 marginal": %.8f, "R2 conditional": %.8f, "ICC adjusted": %.8f, "ICC unadjusted": %.8f}',
          name, r2$R2_marginal, r2$R2_conditional, ic$ICC_adjusted, ic$ICC_unadjusted)
})
cat("{\n", paste(rows, collapse = ",\n"), "\n}\n", sep = "")
