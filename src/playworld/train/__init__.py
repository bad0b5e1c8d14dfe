"""The shared training loop: optimisation, EMA, checkpoints, logging, resume, distributed."""
