import pytest
import torch
import torch.nn.functional as F

from fmnist.models import create_model, get_spec, list_models, param_count
from fmnist.runtime import to_input


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_and_learns(name, ds):
    torch.manual_seed(0)
    model = create_model(name)
    x, y = to_input(ds.train_images[:32]), ds.train_labels[:32]
    out = model(x)
    assert out.shape == (32, 10) and torch.isfinite(out).all()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        torch.manual_seed(1)  # the same dropout masks every step: the loss is comparable
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError, match="unknown model 'vgg'.*cnn2.*resnet"):
        create_model("vgg")


def test_registry_metadata():
    assert {"mlp", "mlp2", "cnn2", "cnn3bn", "keras1", "keras2", "keras3", "resnet", "ensemble", "logreg"} <= set(
        list_models()
    )
    assert param_count("mlp") == 784 * 128 + 128 + 128 * 10 + 10
    assert param_count("cnn2") == 225_034  # 32*9+32 + 64*32*9+64 + 1600*128+128 + 128*10+10
    for name in list_models():
        spec = get_spec(name)
        assert spec.description and ({"epochs", "batch_size", "lr"} <= set(spec.recipe)) == spec.trainable
    assert not get_spec("ensemble").trainable and get_spec("ensemble").recipe == {}
    assert get_spec("cnn3bn").recipe["patience"] == 5 and get_spec("cnn3bn").recipe["batch_size"] == 32
    assert all(get_spec(k).recipe["batch_size"] == 512 for k in ("keras1", "keras2", "keras3"))


def test_ensemble_votes():
    torch.manual_seed(0)
    x = torch.randn(6, 1, 28, 28)
    soft = create_model("ensemble", vote="soft").eval()
    maj = create_model("ensemble", vote="majority").eval()
    maj.load_state_dict(soft.state_dict())
    with torch.no_grad():
        member_preds = torch.stack([m(x).argmax(1) for m in soft.members])  # (3, 6)
        mean = torch.stack([m(x).softmax(1) for m in soft.members]).mean(0)
        assert torch.allclose(soft(x).exp(), mean, atol=1e-5)
        voted = maj(x).argmax(1)
    for j in range(6):
        counts = torch.bincount(member_preds[:, j], minlength=10)
        assert counts[voted[j]] == counts.max()  # the winner has the most votes
    with pytest.raises(ValueError, match="vote"):
        create_model("ensemble", vote="median")
