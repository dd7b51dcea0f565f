"""Attribution for one output pixel: against captum called directly, and against hand-computed values."""

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam
from torch import nn

from attnviz.analysis.attribution import cell_mass, grad_cam, integrated_gradients, rank_correlation, top_overlap
from attnviz.models import build_model


class LinearSeg(nn.Module):
    """logits = W2 (W1 x): a 1x1 'backbone' stage (layer4) and a 1x1 classifier, no bias, no nonlinearity."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.layer4 = nn.Conv2d(3, 5, 1, bias=False)
        self.classifier = nn.Conv2d(5, 4, 1, bias=False)

    def forward(self, x):
        return self.classifier(self.backbone.layer4(x))


def test_grad_cam_and_ig_match_captum_called_directly():
    torch.manual_seed(0)
    model = build_model("danet-eca", width=0.125).eval()
    image = torch.rand(1, 3, 64, 80)
    target = (3, 20, 41)
    cam, full = grad_cam(model, image, target)
    direct = LayerGradCam(model, model.backbone.layer4).attribute(image, target=target, relu_attributions=True)
    torch.testing.assert_close(cam, direct[0, 0].detach())
    assert cam.shape == (8, 10) and full.shape == (64, 80) and (cam >= 0).all()
    ig = integrated_gradients(model, image, target, steps=8, internal_batch_size=3)
    direct_ig = IntegratedGradients(model).attribute(
        image, baselines=torch.zeros_like(image), target=target, n_steps=8, internal_batch_size=3
    )
    torch.testing.assert_close(ig, direct_ig[0].detach(), rtol=1e-4, atol=1e-6)


def test_by_hand_on_a_linear_model():
    torch.manual_seed(1)
    model = LinearSeg().eval()
    image = torch.rand(1, 3, 6, 7)
    c, y, x = 2, 4, 5
    w = (model.classifier.weight[:, :, 0, 0] @ model.backbone.layer4.weight[:, :, 0, 0]).detach()  # (4, 3)
    # IG of a linear function is (input - baseline) * gradient, exactly: only pixel (y, x) moves logit (c, y, x)
    ig = integrated_gradients(model, image, (c, y, x), steps=4)
    expected = torch.zeros(3, 6, 7)
    expected[:, y, x] = image[0, :, y, x] * w[c]
    torch.testing.assert_close(ig, expected, rtol=1e-5, atol=1e-7)
    # Grad-CAM: d logit / d A_k is W2[c, k] at (y, x) only, so alpha_k = W2[c, k] / (h w)
    activations = model.backbone.layer4(image).detach()[0]
    alpha = model.classifier.weight[c, :, 0, 0].detach() / (6 * 7)
    cam, _ = grad_cam(model, image, (c, y, x))
    torch.testing.assert_close(cam, torch.relu((alpha[:, None, None] * activations).sum(0)))


def test_cell_mass_pools_magnitude_by_area_and_sums_to_one():
    attribution = torch.zeros(3, 4, 4)
    attribution[0, 0, 0] = -2.0  # magnitude counts, not sign
    attribution[1, 3, 3] = 1.0
    attribution[2, 3, 3] = 1.0
    mass = cell_mass(attribution, (2, 2))
    torch.testing.assert_close(mass, torch.tensor([[0.5, 0.0], [0.0, 0.5]], dtype=torch.float64))


def test_rank_correlation_and_top_overlap_by_hand():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties: ranks of b are (0.5, 0.5, 2, 3); Pearson of ranks (0,1,2,3) and those: 0.9486832980505138
    assert rank_correlation([1, 2, 3, 4], [5, 5, 6, 7]) == pytest.approx(0.9486832980505138)
    assert np.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))
    a = np.array([[9, 8, 0], [0, 0, 7]])
    b = np.array([[9, 0, 8], [0, 0, 7]])
    assert top_overlap(a, b, k=3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        rank_correlation([1, 2], [1, 2, 3])


def test_a_user_model_with_stride_8_logits_is_attributed_at_photo_pixels():
    """A user's segmentation model may return logits smaller than the photo: the target is a photo pixel, so
    UserLogits resizes them as the prediction was resized (else captum indexes out of range)."""
    from types import SimpleNamespace

    from attnviz.analysis.attribution import UserLogits, grad_cam, integrated_gradients

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=8, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))
    user = SimpleNamespace(model=net, forward_logits=lambda x: net(x))
    image = torch.rand(1, 3, 40, 48)
    wrapped = UserLogits(user)
    assert wrapped(image).shape == (1, 3, 40, 48)
    cam, full = grad_cam(wrapped, image, (1, 30, 40), layer=net[0])
    assert cam.shape == (5, 6) and full.shape == (40, 48) and torch.isfinite(full).all()
    ig = integrated_gradients(wrapped, image, (2, 39, 47), steps=4)
    assert ig.shape == (3, 40, 48) and ig.abs().sum() > 0


def test_integrated_gradients_reports_each_internal_batch_and_stops_within_one():
    """The progress the page shows is captum's own internal batches; a stop raised between them ends the
    computation there (Cancel on the attribution page), and reporting changes no value."""
    torch.manual_seed(0)
    model = build_model("danet-eca", width=0.125).eval()
    image, target = torch.rand(1, 3, 32, 40), (2, 10, 20)
    seen = []
    ig = integrated_gradients(
        model, image, target, steps=10, internal_batch_size=4, on_batch=lambda done, total: seen.append((done, total))
    )
    assert seen == [(0, 10), (4, 10), (8, 10)]
    torch.testing.assert_close(ig, integrated_gradients(model, image, target, steps=10, internal_batch_size=4))

    class Stop(Exception):
        pass

    def stop_after_first(done, total):
        seen.append(done)
        if done > 0:
            raise Stop

    seen.clear()
    with pytest.raises(Stop):
        integrated_gradients(model, image, target, steps=10, internal_batch_size=4, on_batch=stop_after_first)
    assert seen == [0, 4]  # one batch ran, the second never started
