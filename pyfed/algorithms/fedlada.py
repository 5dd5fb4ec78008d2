r"""FedLADA (Sun et al., 2023, "Efficient Federated Learning via Local Adaptive Amended Optimizer with
Linear Speedup"), as we read it: local Adam from fresh moments each round, each step amended toward the
global update estimate Δᴳ = mean_i Δ_i/(K·η) of the last round::

    x ← x − η·[(1 − α)·m̂/(√v̂ + ε) + α·Δᴳ] − η·λ·x          (m = v = 0, step 0 at the start of a round)

i.e. FedAdamW's client without the second-moment aggregation (see fedadamw.py for the implementation).
Server: x ← x − mean_i Δ_i; Δᴳ ← mean_i Δ_i/(K·η). Bytes: down S·4(d + p), up S·4d.
"""

from pyfed.algorithms.fedadamw import AdamWClient


class FedLADA(AdamWClient):
    name = "fedlada"

    def __init__(
        self,
        alpha: float = 0.5,
        weight_decay: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ):
        super().__init__(alpha=alpha, weight_decay=weight_decay, beta1=beta1, beta2=beta2, eps=eps)
