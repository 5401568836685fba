"""The names a user chooses among, in a module without heavy imports: the command line checks its
options against them before it loads torch or starts anything."""

DECODES = ("annealed-mean", "argmax", "top-k", "mean", "confident")
UPSAMPLES = ("guided", "bilinear")
