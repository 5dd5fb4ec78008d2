r"""Local AdamW: each client runs AdamW from fresh state (m = v = 0, step 0) for K steps; the server
averages the weights (FedAvg). Nothing but the weights crosses the wire: down S·4d, up S·4d.

    x ← x − η·m̂/(√v̂ + ε) − η·λ·x       (torch.optim.AdamW's rule, via kernels.optim.AdamW)
"""

from pyfed.algorithms.fedadamw import AdamWClient


class LocalAdamW(AdamWClient):
    name = "local_adamw"
    send_direction = False

    def __init__(
        self, weight_decay: float = 0.01, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ):
        super().__init__(alpha=0.0, weight_decay=weight_decay, beta1=beta1, beta2=beta2, eps=eps)
