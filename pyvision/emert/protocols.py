"""The seven EMER benchmark protocols as named configurations, and their cross-validation splits.

The paper evaluates on seven protocols; the release does not spell them out, so these are our reading
of its text (label source × granularity × split × modality subset), named so a run says which one it is:

==================  ======  =======  ===================  =================
name                labels  classes  split                modalities
==================  ======  =======  ===================  =================
er7                 ER      7        subject-dependent    face, eye, eye2
er3                 ER      3        subject-dependent    face, eye, eye2
fer7                FER     7        subject-dependent    face, eye, eye2
fer3                FER     3        subject-dependent    face, eye, eye2
er7-si              ER      7        subject-independent  face, eye, eye2
er7-face            ER      7        subject-dependent    face
er7-eye             ER      7        subject-dependent    eye, eye2
==================  ======  =======  ===================  =================

Subject-dependent: stratified K-fold over samples (a participant may be in train and test);
subject-independent: group K-fold over participants (none is in both). Every protocol reports WAR,
UAR, weighted and unweighted F1 averaged over the K folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyvision.emert.model import MODALITIES

__all__ = ["PROTOCOLS", "Protocol", "fold_splits", "get_protocol"]


@dataclass(frozen=True)
class Protocol:
    name: str
    labels: str  # "er" or "fer": which label is the primary target
    classes: int  # 7 fine or 3 coarse
    split: str  # "subject_dependent" or "subject_independent"
    modalities: tuple[str, ...] = MODALITIES

    def __post_init__(self):
        if self.labels not in ("er", "fer"):
            raise ValueError(f"labels must be 'er' or 'fer', got {self.labels!r}")
        if self.classes not in (3, 7):
            raise ValueError(f"classes must be 3 or 7, got {self.classes}")
        if self.split not in ("subject_dependent", "subject_independent"):
            raise ValueError(
                f"split must be 'subject_dependent' or 'subject_independent', got {self.split!r}"
            )
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")


_SD, _SI = "subject_dependent", "subject_independent"
PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("er7", "er", 7, _SD),
        Protocol("er3", "er", 3, _SD),
        Protocol("fer7", "fer", 7, _SD),
        Protocol("fer3", "fer", 3, _SD),
        Protocol("er7-si", "er", 7, _SI),
        Protocol("er7-face", "er", 7, _SD, ("face",)),
        Protocol("er7-eye", "er", 7, _SD, ("eye", "eye2")),
    )
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def fold_splits(
    labels, subjects, split: str, n_folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_index, test_index) pairs for K-fold cross-validation.

    ``subject_dependent``: sklearn ``StratifiedKFold`` on ``labels`` (shuffled with ``seed``);
    ``subject_independent``: ``GroupKFold`` on ``subjects`` — no participant in both parts.
    """
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    labels = np.asarray(labels)
    subjects = np.asarray(subjects)
    if labels.shape != subjects.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and subjects must be 1-D of equal length, got {labels.shape} and {subjects.shape}"
        )
    if not isinstance(n_folds, int) or n_folds < 2:
        raise ValueError(f"n_folds must be an int >= 2, got {n_folds!r}")
    x = np.zeros((labels.size, 1))
    if split == _SD:
        folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(x, labels)
    elif split == _SI:
        if np.unique(subjects).size < n_folds:
            raise ValueError(
                f"subject-independent {n_folds}-fold needs >= {n_folds} subjects, "
                f"got {np.unique(subjects).size}"
            )
        folds = GroupKFold(n_folds).split(x, labels, subjects)
    else:
        raise ValueError(f"split must be {_SD!r} or {_SI!r}, got {split!r}")
    return [(np.asarray(tr), np.asarray(te)) for tr, te in folds]
