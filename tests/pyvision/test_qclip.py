import math

import numpy as np
import pytest
import torch

from pyvision.qclip import (
    QCLIP,
    QCLIPConfig,
    count_parameters,
    frame_difference_indices,
    frame_differences,
    plcc,
    plcc_loss,
    rank_loss,
    srcc,
    uniform_indices,
    vqa_metrics,
)
from pyvision.qclip.metrics import krcc
from pyvision.qclip.sampling import frame_differences_loop, random_indices, sample_indices


@pytest.fixture(autouse=True)
def one_thread():
    # torch's default threads oversubscribe a shared 2-core box; 1 thread is far faster there.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return QCLIP(QCLIPConfig())


def test_only_adapter_prompt_context_and_head_train(model):
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("adapter.", "context", "score_weight")) for n in trainable)
    assert all(not p.requires_grad for p in model.clip.parameters())
    assert "context" in trainable and "score_weight" in trainable
    assert model.context.shape == (1, 3, 64)
    assert count_parameters(model) == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert all(g.item() == pytest.approx(0.1) for g in model.adapter.gates.values())
    model.train()
    assert not model.clip.training  # the frozen backbone stays in eval mode


def test_one_tensor_serves_both_towers(model):
    # Record which adapter tensors each tower's forward touches (through autograd), and check the
    # same parameter objects get gradient from an image-only and from a text-only loss.
    model.zero_grad(set_to_none=True)
    model.frame_features(torch.randn(2, 3, 32, 32)).sum().backward()
    image_grads = {n for n, p in model.adapter.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model.text_features().sum().backward()
    text_grads = {n for n, p in model.adapter.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    shared = image_grads & text_grads
    # down/up/norm at every adapted depth (2 and 3 of 4), the core and the pooled adapter serve both towers
    for name in (
        "core.0.weight",
        "down.0.weight",
        "down.1.weight",
        "up.1.weight",
        "norm.0.weight",
        "pooled.3.weight",
    ):
        assert name in shared
    assert image_grads - text_grads == {"gates.image", "gates.image_pooled"}
    assert text_grads - image_grads == {"gates.text", "gates.text_pooled"}
    assert len(model.adapter.down) == 2  # depths 2, 3: one projection tensor per depth, not per tower


def test_adapter_is_identity_below_start_and_changes_above(model):
    hook = model.adapter.block_hook("image")
    x = torch.randn(2, 5, 64)
    assert hook(1, x) is x
    y = hook(2, x)
    ad = model.adapter
    expect = x + 0.1 * ad.norm[0](ad.up[0](ad.core(ad.down[0](x))))
    torch.testing.assert_close(y, expect)


def test_scores_and_heads(model):
    video = torch.randn(3, 2, 3, 32, 32)
    sims = model.similarities(video)
    assert sims.shape == (3, 5) and sims.abs().max() <= 1 + 1e-5
    torch.testing.assert_close(model(video), sims @ model.score_weight)
    torch.manual_seed(0)
    soft = QCLIP(QCLIPConfig(score_head="softmax"))
    s = soft(video)
    assert torch.all((s >= 1) & (s <= 5))
    with pytest.raises(ValueError, match="video must be"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="score_head"):
        QCLIP(QCLIPConfig(score_head="mean"))
    assert "trainable parameters" in model.describe()


def _clip_with_cuts(t=30, cuts=(10, 21), seed=0):
    g = torch.Generator().manual_seed(seed)
    frames, scene = [], torch.rand(3, 16, 16, generator=g)
    for i in range(t):
        if i in cuts:
            scene = torch.rand(3, 16, 16, generator=g)
        frames.append(scene + 0.01 * torch.randn(3, 16, 16, generator=g))  # small sensor noise
    return torch.stack(frames)


def test_frame_difference_sampler_picks_cuts():
    video = _clip_with_cuts()
    # frame 0 (no predecessor) first, then the first frame after each cut
    assert frame_difference_indices(video, 3, downscale=2) == [0, 10, 21]
    picked = frame_difference_indices(video, 5, min_spacing=3, downscale=2)
    assert {0, 10, 21} <= set(picked) and len(picked) == 5
    assert min(np.diff(picked)) >= 3
    assert frame_difference_indices(video[:3], 5) == [0, 0, 1, 2, 2]  # fewer frames than asked: uniform


def test_frame_difference_ties_and_fill():
    d = torch.tensor([0.0, 5.0, 5.0, 0.0, 0.0])  # a tie: the earlier frame wins
    assert frame_difference_indices(d, 2) == [0, 2]
    # spacing leaves too few: filled with uniform positions not taken
    # uniform_indices(6, 3) = round([0, 2.5, 5]) = [0, 2, 5] (numpy rounds half to even)
    assert frame_difference_indices(torch.zeros(5), 3, min_spacing=10) == [0, 2, 5]


def test_frame_differences_by_hand_and_batched():
    v = torch.zeros(3, 1, 2, 2)
    v[1] += 2.0
    v[2, 0, 0, 0] = 4.0
    # |2-0| everywhere → 2; frame 2 - frame 1 = (4-2, -2, -2, -2) → mean |.| = 2
    torch.testing.assert_close(frame_differences(v, downscale=1), torch.tensor([2.0, 2.0]))
    video = torch.randint(0, 255, (2, 7, 3, 9, 11), dtype=torch.uint8)
    batched = frame_differences(video, downscale=4)
    for b in range(2):
        torch.testing.assert_close(batched[b], frame_differences_loop(video[b], downscale=4))
    with pytest.raises(ValueError, match="at least 2 frames"):
        frame_differences(video[:, :1])


def test_uniform_and_random_samplers():
    assert uniform_indices(10, 4) == [0, 3, 6, 9]
    r = random_indices(10, 4, np.random.default_rng(0))
    assert len(set(r)) == 4 and r == sorted(r)
    with pytest.raises(ValueError, match="sampler must be"):
        sample_indices("middle", 10, 4)
    with pytest.raises(ValueError, match="no frames"):
        uniform_indices(0, 4)


def test_plcc_loss_by_hand():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert plcc_loss(2 * y + 7, y).item() == pytest.approx(0.0, abs=1e-6)
    # ŷ = −y: standardised p = −z, mean((p − z)²)/4 = 4·1/4 = 1, ρ = −1 so ρp − z = 0 → ½(1 + 0) = 0.5
    assert plcc_loss(-y, y).item() == pytest.approx(0.5, abs=1e-6)


def test_rank_loss_by_hand():
    assert rank_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0])).item() == 0.0
    # both ordered pairs violated by 1: Σh = 2, n(n−1) = 2, max h = 1 → 2/2/2
    assert rank_loss(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="1-D"):
        rank_loss(torch.zeros(2, 1), torch.zeros(2, 1))


def test_metrics_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert srcc(x, [10, 20, 40, 30]) == pytest.approx(0.8)  # 1 − 6·2/(4·15)
    assert krcc(x, [10, 20, 40, 30]) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant of 6
    # predictions that are a logistic of the truth: raw PLCC < 1, after the 4-parameter fit = 1
    t = np.linspace(-3, 3, 25)
    y = 4 / (1 + np.exp(-2 * t)) + 1
    raw = np.corrcoef(t, y)[0, 1]
    fitted, ok = plcc(t, y)
    assert ok and fitted == pytest.approx(1.0, abs=1e-6) and raw < 0.97
    # a fit that cannot converge in one evaluation falls back to raw PLCC and says so
    fallback, ok = plcc(t, y, maxfev=1)
    assert not ok and fallback == pytest.approx(raw)
    m = vqa_metrics(t, y)
    assert m["srcc"] == pytest.approx(1.0) and m["plcc_fitted"] == 1.0
    assert not math.isnan(vqa_metrics(-t, y)["plcc"])
