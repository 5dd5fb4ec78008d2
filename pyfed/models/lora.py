"""LoRA fine-tuning of a local Hugging Face model through peft (extra ``fed``).

Only the LoRA adapters (and the classification head, which peft keeps trainable through
``modules_to_save``) require grad, and pyfed communicates only trainable parameters and floating
buffers, so a federated round moves the adapters, not the frozen backbone.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn


def lora_sequence_classifier(
    path: str | Path,
    num_labels: int,
    *,
    r: int = 8,
    lora_alpha: int | None = None,
    target_modules: list[str] | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """Load ``AutoModelForSequenceClassification`` from a local folder (no hub access) and wrap it in
    peft LoRA with rank ``r`` (scaling ``lora_alpha``, default 2r, as the FedAdamW code uses)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"Hugging Face model folder {str(path)!r} does not exist (no download at run "
            "time: save_pretrained the model there)"
        )
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=num_labels, local_files_only=True
    )
    cfg = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=lora_alpha or 2 * r,
        lora_dropout=dropout,
        target_modules=target_modules,
    )
    return get_peft_model(base, cfg)
