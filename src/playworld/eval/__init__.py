"""Evaluation: fidelity, controllability, physical consistency, long-horizon coherence; the HTML report."""
