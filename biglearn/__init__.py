"""BigLearn Studio: the BigLearn-GAN of "Big Learning" (universal p(x_T | x_S) trained adversarially)."""
__version__ = "0.1.0"
