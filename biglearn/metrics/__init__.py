"""Evaluation metrics that need no downloaded weights: SWD on pixels, Fréchet/KID on given features, diversity."""
