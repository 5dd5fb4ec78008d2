r"""Local Muon: each client runs kernels.optim.Muon from zero momentum for K steps (AdamW for the
non-Muon parameters); the server averages the weights (FedAvg). Down S·4d, up S·4d. The update rule is
FedMuon's with α = 0 and M̄ = 0 (see fedmuon.py)."""

from pyfed.algorithms.fedmuon import MuonClient


class LocalMuon(MuonClient):
    name = "local_muon"

    def __init__(
        self,
        momentum: float = 0.98,
        nesterov: bool = True,
        weight_decay: float = 0.01,
        adamw_lr_ratio: float = 0.05,
        muon_params: str = "hidden",
        ns_steps: int = 5,
    ):
        super().__init__(0.0, momentum, nesterov, weight_decay, adamw_lr_ratio, muon_params, ns_steps)
