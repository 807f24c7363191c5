"""Experiments over many runs: sweeps of a grid of settings under one budget, and scaling fits."""
