"""`python -m playworld.cli ...`, e.g. under torchrun: `torchrun --nproc_per_node=2 -m playworld.cli train ...`."""

from playworld.cli import main

main()
