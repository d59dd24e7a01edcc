"""Network building blocks and the two networks of the BigLearn-GAN."""
