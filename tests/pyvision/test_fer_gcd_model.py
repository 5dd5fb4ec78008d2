"""pyvision.fer_gcd.model: the cosine classifier; the adversarial gradient reaches the backbone reversed."""


import torch

from pyvision.fer_gcd.model import GCDModel


def _model(adversarial=True):
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6))
    return GCDModel(backbone, 6, 5, proj_dim=4, hidden_dim=8, mlp_layers=2, adversarial=adversarial,
                    adv_dropout=0.0)


def test_shapes_and_cosine_logits():
    m = _model()
    z, logits, adv = m(torch.randn(7, 3, 2, 2))
    assert z.shape == (7, 4) and logits.shape == (7, 5) and adv.shape == (7, 5)
    assert logits.abs().max() <= 1 + 1e-6
    f = m.backbone(torch.ones(1, 3, 2, 2))
    expected = torch.nn.functional.cosine_similarity(f, m.classifier_weight, dim=1)
    torch.testing.assert_close(m.classify(f)[0], expected)
    assert _model(adversarial=False)(torch.randn(2, 3, 2, 2))[2] is None


def test_adversarial_gradient_reaches_backbone_reversed_and_scaled():
    m = _model()
    x = torch.randn(5, 3, 2, 2)
    # reference: the adversarial head applied to the features without reversal
    f = m.backbone(x)
    m.adv_head(f).square().sum().backward()
    plain = m.backbone[1].weight.grad.clone()
    head_grad = m.adv_head[0].weight.grad.clone()
    m.zero_grad()
    m.grl_coeff = 0.25
    m(x)[2].square().sum().backward()
    torch.testing.assert_close(m.backbone[1].weight.grad, -0.25 * plain)
    torch.testing.assert_close(m.adv_head[0].weight.grad, head_grad)  # the head itself is not reversed
