"""Grad-CAM against an autograd reference that resumes the model from the block output."""

import numpy as np
import torch

from tests.utils.models import micro, pixels
from vitscope.vit.analysis.gradcam import default_layer, gradcam, gradcam_map
from vitscope.vit.models import intervene
from vitscope.vit.models.layout import TokenLayout


def reference(lm, x, layer):
    """Grad-CAM computed independently: block output -> resume the rest -> autograd -> numpy map."""
    with torch.no_grad(), intervene(lm.parts, record_outputs=[layer]) as rec:
        target = lm.forward(x).argmax(-1)
    hidden = rec.outputs[layer].clone().requires_grad_(True)
    logits = lm.resume(layer + 1, hidden)
    logits.gather(1, target[:, None]).sum().backward()
    n = lm.layout.n_prefix
    assert hidden.grad is not None
    acts, grads = hidden[:, n:].detach().numpy(), hidden.grad[:, n:].numpy()
    weights = grads.mean(1, keepdims=True)
    cam = np.maximum((acts * weights).sum(-1), 0)
    return cam.reshape(len(x), *lm.layout.grid), target, hidden, logits


def test_gradcam_matches_an_autograd_reference_through_resume():
    lm = micro("deit-distilled")
    x = pixels(lm, 3)
    expected, target, _, _ = reference(lm, x, 0)
    cam, used = gradcam(lm, x, layer=0)
    assert torch.equal(used, target)
    np.testing.assert_allclose(cam.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert cam.max() > 0


def test_reference_gradient_agrees_with_finite_differences():
    lm = micro("vit")
    x = pixels(lm, 1)
    _, target, hidden, _ = reference(lm, x, 0)
    direction = torch.randn_like(hidden)
    direction /= direction.norm()  # a unit step keeps the central difference in the linear range
    eps = 1e-2
    with torch.no_grad():
        up = lm.resume(1, hidden.detach() + eps * direction)[0, target[0]]
        down = lm.resume(1, hidden.detach() - eps * direction)[0, target[0]]
    numeric = (up - down) / (2 * eps)
    analytic = (hidden.grad * direction).sum()
    torch.testing.assert_close(numeric, analytic, rtol=2e-2, atol=1e-3)


def test_last_block_has_zero_patch_gradients_so_the_default_is_the_one_before():
    lm = micro("vit")
    cam, _ = gradcam(lm, pixels(lm, 2), layer=lm.num_layers - 1)
    assert torch.equal(cam, torch.zeros_like(cam))
    assert default_layer(lm.num_layers) == lm.num_layers - 2
    assert default_layer(1) == 0


def test_gradcam_map_ignores_prefix_tokens_and_applies_relu():
    layout = TokenLayout(("cls", "register"), (1, 2), 1, (1, 2))
    tokens = torch.tensor([[[9.0, 9.0], [9.0, 9.0], [1.0, 0.0], [-1.0, 2.0]]])
    grads = torch.tensor([[[5.0, 5.0], [5.0, 5.0], [1.0, 1.0], [1.0, -1.0]]])
    # weights = mean over the two patches = [1, 0]; cam = [1, -1] -> ReLU -> [1, 0]
    torch.testing.assert_close(gradcam_map(tokens, grads, layout), torch.tensor([[[1.0, 0.0]]]))
