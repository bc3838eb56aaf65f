"""Exploring hyperparameters: a search space (`space`) and the sweep that trains its trials as runs (`sweep`)."""
