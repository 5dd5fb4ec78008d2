"""Q-CLIP video quality assessment: frozen CLIP + Shared Cross-Modal Adapter + learned quality prompts."""

from pyvision.qclip.losses import plcc_loss, qclip_loss, rank_loss
from pyvision.qclip.metrics import krcc, plcc, srcc, vqa_metrics
from pyvision.qclip.model import (
    LEVELS,
    QCLIP,
    QCLIP_PRESETS,
    QCLIPConfig,
    SharedCrossModalAdapter,
    count_parameters,
)
from pyvision.qclip.pretrain import PretrainConfig, clip_contrastive_loss, pretrain_clip, retrieval_accuracy
from pyvision.qclip.sampling import (
    SAMPLERS,
    frame_difference_indices,
    frame_differences,
    random_indices,
    uniform_indices,
)

__all__ = [
    "LEVELS",
    "PretrainConfig",
    "QCLIP",
    "QCLIPConfig",
    "QCLIP_PRESETS",
    "SAMPLERS",
    "SharedCrossModalAdapter",
    "clip_contrastive_loss",
    "count_parameters",
    "frame_difference_indices",
    "frame_differences",
    "krcc",
    "plcc",
    "plcc_loss",
    "pretrain_clip",
    "qclip_loss",
    "random_indices",
    "rank_loss",
    "retrieval_accuracy",
    "srcc",
    "uniform_indices",
    "vqa_metrics",
]
