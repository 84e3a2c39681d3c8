import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from tuner.core.configs import ModelConfig
from tuner.core.constants import OUT_SHAPE
from tuner.learn.model import build_model
from tuner.learn.teacher import psnr, teach, teacher_matrix


def test_model_output_shape_for_cifar_images():
    model = build_model(ModelConfig())
    assert model(torch.rand(5, 3, 32, 32)).shape == (5, *OUT_SHAPE)


def test_fc_layers_follow_the_image_shape_given_to_the_constructor():
    small, large = build_model(ModelConfig(in_shape=(3, 32, 32))), build_model(ModelConfig(in_shape=(3, 40, 48)))
    assert small.fc1.in_features == 64 * 14 * 14
    assert large.fc1.in_features == 64 * 18 * 22
    assert large(torch.rand(2, 3, 40, 48)).shape == (2, *OUT_SHAPE)
    assert sum(p.numel() for p in large.parameters()) > sum(p.numel() for p in small.parameters())


def test_init_scale_multiplies_the_fc_weights():
    torch.manual_seed(0)
    a = build_model(ModelConfig(init_scale=1.0)).fc1.weight.std().item()
    torch.manual_seed(0)
    b = build_model(ModelConfig(init_scale=0.1)).fc1.weight.std().item()
    assert b == pytest.approx(0.1 * a, rel=1e-3)


def test_negative_slope_reaches_the_activation():
    assert build_model(ModelConfig(negative_slope=0.3)).act.negative_slope == 0.3


def test_normalisation_is_inside_the_model_and_in_its_state_dict():
    model = build_model(ModelConfig())
    images = torch.rand(64, 3, 32, 32) * 0.5 + 0.25
    model.set_normalisation(images)
    state = model.state_dict()
    assert torch.allclose(state["mean"].flatten(), images.mean(dim=(0, 2, 3)), atol=1e-6)
    rebuilt = build_model(ModelConfig())
    rebuilt.load_state_dict(state)
    model.eval(), rebuilt.eval()
    assert torch.equal(model(images[:4]), rebuilt(images[:4]))


def test_model_config_round_trips_through_a_dict():
    cfg = ModelConfig(hidden=64, negative_slope=0.2, init_scale=0.5)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"hiden": 3})


def test_teacher_equals_torchvision_applied_step_by_step():
    images = torch.rand(4, 3, 32, 32)
    expected = torch.stack(
        [
            TF.vertical_flip(TF.horizontal_flip(TF.rgb_to_grayscale(TF.resize(img, [28, 28], antialias=True))))
            for img in images
        ]
    )
    assert torch.allclose(teach(images), expected, atol=1e-6)
    assert teach(images).shape == (4, 1, 28, 28)


def test_teacher_accepts_uint8_as_0_to_255():
    images = (torch.rand(3, 3, 32, 32) * 255).round().to(torch.uint8)
    assert torch.allclose(teach(images), teach(images.float() / 255), atol=1e-6)


def test_teacher_matrix_reproduces_the_pipeline():
    images = torch.rand(8, 3, 32, 32)
    via_matrix = images.flatten(1) @ teacher_matrix()
    assert torch.allclose(via_matrix, teach(images).flatten(1), atol=1e-5)


def test_psnr():
    assert psnr(0.01) == pytest.approx(20.0)
    assert math.isinf(psnr(0.0))


def test_init_is_seeded_on_its_own_generator():
    cfg = ModelConfig(hidden=16, init_scale=0.5)
    before = torch.random.get_rng_state()
    a, b, c = build_model(cfg, seed=3), build_model(cfg, seed=3), build_model(cfg, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is untouched
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.fc1.weight, c.fc1.weight)
