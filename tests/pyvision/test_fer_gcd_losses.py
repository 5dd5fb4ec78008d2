"""pyvision.fer_gcd.losses: every formula on inputs whose value is computed by hand in the test, plus an
independent path where one exists (SimCLR = SupCon without labels, uniform smoothing = torch's)."""

import math

import pytest
import torch
import torch.nn.functional as F

from pyvision.fer_gcd import losses as L

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def test_sup_con_hand_values():
    feats = torch.stack([torch.stack([E1, E1]), torch.stack([E2, E2])])  # (B=2, V=2, D=2)
    lse = math.log(math.e + 2)  # each anchor: one row at cosine 1, two at cosine 0 (τ = 1)
    # SimCLR (labels None): the positive is the other view, cosine 1.
    assert L.sup_con_loss(feats, None, 1.0, 1.0).item() == pytest.approx(lse - 1)
    # one class: positives are the other 3 rows, log-probs (1 − lse), (0 − lse), (0 − lse).
    assert L.sup_con_loss(feats, torch.tensor([0, 0]), 1.0, 1.0).item() == pytest.approx(lse - 1 / 3)
    # τ/τ_b scales the loss.
    assert L.sup_con_loss(feats, None, 1.0, 2.0).item() == pytest.approx((lse - 1) / 2)


def test_info_nce_hand_value_and_equals_simclr_sup_con():
    rows = torch.stack([E1, E2, E1, E2])  # view-major: sample 0 = E1, sample 1 = E2
    assert L.info_nce_loss(rows, temperature=1.0).item() == pytest.approx(math.log(math.e + 2) - 1)
    torch.manual_seed(0)
    z = torch.randn(10, 5)
    feats = F.normalize(torch.stack(z.chunk(2), dim=1), dim=-1)  # (5, 2, 5)
    torch.testing.assert_close(L.info_nce_loss(z, temperature=0.5), L.sup_con_loss(feats, None, 0.5, 0.5))
    with pytest.raises(ValueError, match="n_views"):
        L.info_nce_loss(z, n_views=3)


def test_teacher_temperature_schedule():
    assert L.teacher_temperature(0, 5) == pytest.approx(0.07)
    assert L.teacher_temperature(2, 5) == pytest.approx(0.055)
    assert L.teacher_temperature(4, 5) == pytest.approx(0.04)
    assert L.teacher_temperature(9, 5) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="epoch"):
        L.teacher_temperature(-1, 5)


def test_self_distillation_hand_value():
    ts = 0.1
    # view 1 teacher uniform, view 2 teacher one-hot on class 0 (logit 100 / τ_t); student view 2 has
    # probabilities (3/4, 1/4), student view 1 is uniform.
    teacher = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    student = torch.tensor([[0.0, 0.0], [math.log(3) * ts, 0.0]])
    term_12 = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))  # q_1 against student view 2
    term_21 = math.log(2)  # one-hot q_2 against uniform student view 1
    got = L.self_distillation_loss(student, teacher, teacher_temp=0.5, student_temp=ts)
    assert got.item() == pytest.approx((term_12 + term_21) / 2, rel=1e-6)
    # the teacher gets no gradient
    t = teacher.clone().requires_grad_()
    L.self_distillation_loss(student.requires_grad_(), t, 0.5, ts).backward()
    assert t.grad is None


def test_mean_entropy_regularizer():
    # both rows sure of class 0 → p̄ = (1, 0) → R = log 2; opposite rows → p̄ uniform → R = 0
    assert L.mean_entropy_regularizer(torch.tensor([[50.0, 0.0], [50.0, 0.0]]), 1.0).item() == pytest.approx(
        math.log(2), abs=1e-6)
    assert L.mean_entropy_regularizer(torch.tensor([[50.0, 0.0], [0.0, 50.0]]), 1.0).item() == pytest.approx(
        0.0, abs=1e-6)


def test_worst_case_estimation_hand_value():
    y_l, y_l_adv = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])  # ŷ = 0, CE = log 2
    y_u, y_u_adv = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, math.log(3)]])  # ŷ = 1, σ = 3/4
    got = L.worst_case_estimation_loss(y_l, y_l_adv, y_u, y_u_adv, eta_prime=2.0).item()
    assert got == pytest.approx(2 * math.log(2) - math.log(0.25 + 1e-6), rel=1e-7)
    # empty unlabelled part adds 0
    empty = torch.zeros(0, 2)
    only_l = L.worst_case_estimation_loss(y_l, y_l_adv, empty, empty, 2.0)
    assert only_l.item() == pytest.approx(2 * math.log(2))
    with pytest.raises(ValueError, match="must match"):
        L.worst_case_estimation_loss(y_l, y_l_adv, y_u, torch.zeros(2, 2))


def test_difficulty_weights_hand_value():
    labels = torch.tensor([0, 0, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0])  # accuracies: class 0 1/2, class 1 1, class 2 0, class 3 absent
    logits = F.one_hot(preds, 4).float()
    w = L.difficulty_weights(logits, labels, delta=0.5)
    torch.testing.assert_close(w, torch.tensor([3 / 11, 2 / 11, 6 / 11, 0.0]))
    with pytest.raises(ValueError, match="labels"):
        L.difficulty_weights(logits, torch.tensor([0, 4, 0, 0, 0]))


def test_dynamic_label_smoothing_hand_value_and_uniform_equals_torch():
    logits = torch.tensor([[0.0, math.log(2), 0.0]])  # σ = (1/4, 1/2, 1/4)
    got = L.dynamic_label_smoothing_loss(logits, torch.tensor([1]), 0.2, torch.tensor([0.5, 0.0, 0.5]))
    assert got.item() == pytest.approx(1.2 * math.log(2))  # target (0.1, 0.8, 0.1)
    torch.manual_seed(0)
    z, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    torch.testing.assert_close(L.dynamic_label_smoothing_loss(z, y, 0.3, torch.full((5,), 0.2)),
                               F.cross_entropy(z, y, label_smoothing=0.3))
    assert L.label_smoothing_epsilon(5, 10, 0.1) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="class_weights"):
        L.dynamic_label_smoothing_loss(z, y, 0.3, torch.ones(4))


def test_cluster_compactness_hand_values():
    x = torch.tensor([[0.0], [2.0], [4.0], [6.0]])
    y = torch.tensor([0, 0, 1, 1])
    # W = 4·1 = 4, B = 2·(1−3)² + 2·(5−3)² = 16, all d_i = 1 → spread 0
    assert L.cluster_compactness_loss(x, y).item() == pytest.approx(0.25)
    x = torch.tensor([[0.0], [1.0], [5.0], [10.0], [12.0]])
    y = torch.tensor([0, 0, 0, 1, 1])
    w = 4 + 1 + 9 + 1 + 1
    b = 3 * (2 - 5.6) ** 2 + 2 * (11 - 5.6) ** 2
    spread = ((9 - 1) + 0) / 2
    assert L.cluster_compactness_loss(x, y, maxmin_weight=0.1).item() == pytest.approx(w / b + 0.1 * spread,
                                                                                        rel=1e-5)
    assert L.cluster_compactness_loss(x, torch.zeros(5, dtype=torch.long)).item() == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="features"):
        L.sup_con_loss(torch.randn(4, 3))
    with pytest.raises(TypeError, match="labels"):
        L.sup_con_loss(torch.randn(4, 2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="teacher_logits"):
        L.self_distillation_loss(torch.randn(4, 3), torch.randn(4, 2), 0.04)
