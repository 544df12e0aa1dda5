# Export lme4's cbpp and grouseticks (chapter 12, "Beyond normal responses") to data/.
# Run from the repository root: Rscript data/reconstruct/export_glmm_data.R
suppressPackageStartupMessages(library(lme4))
write.csv(lme4::cbpp, "data/cbpp.csv", row.names = FALSE, quote = FALSE)
write.csv(lme4::grouseticks, "data/grouseticks.csv", row.names = FALSE, quote = FALSE)
