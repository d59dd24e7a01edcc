"""Multi-modal big learning on MNIST (paper §4.3, App. E): one any-order transformer over X = (y, x-tokens).

tokenizer (VQ-VAE: 28 px digit <-> 7x7 codes) -> objective (Eq. 19 (S', T') pairs and prediction orders) ->
transformer (p(X_t | X_S', earlier targets)) -> model (the sampling API) -> trainer / evaluate.
"""
