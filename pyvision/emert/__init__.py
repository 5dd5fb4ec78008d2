"""EMERT (eye-behaviour-aided multimodal emotion recognition): model, losses, protocols; the CLI task
module is ``pyvision.emert.train``."""

from pyvision.emert.losses import emert_loss, modality_loss, task_loss
from pyvision.emert.model import EMERT, MODALITIES, EMERTModelConfig, GradientReversal, grad_reverse
from pyvision.emert.protocols import PROTOCOLS, Protocol, fold_splits, get_protocol

__all__ = [
    "EMERT",
    "MODALITIES",
    "PROTOCOLS",
    "EMERTModelConfig",
    "GradientReversal",
    "Protocol",
    "emert_loss",
    "fold_splits",
    "get_protocol",
    "grad_reverse",
    "modality_loss",
    "task_loss",
]
