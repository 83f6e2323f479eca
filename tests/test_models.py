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


def _shapes(model: torch.nn.Module) -> list[tuple[int, ...]]:
    """The output shape of every Conv2d, in order."""
    seen: list = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    model.eval()(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    return seen


def test_roy_keras_models_follow_the_report_code():
    # Report 004's code: Conv2D(32, 3, padding='valid') then Conv2D(64, 3, strides=2, padding='same'), ...
    assert param_count("keras2") == 159_882 and param_count("keras3") == 289_610  # Keras's model.summary()
    assert _shapes(create_model("keras2")) == [(32, 26, 26), (64, 7, 7)]
    assert _shapes(create_model("keras3")) == [(64, 26, 26), (128, 7, 7), (64, 2, 2)]
    drops = lambda n: [m.p for m in create_model(n).modules() if isinstance(m, torch.nn.Dropout)]
    assert drops("keras2") == [0.25, 0.25] and drops("keras3") == [0.25, 0.5, 0.25, 0.10]
    r2, r3 = get_spec("keras2").recipe, get_spec("keras3").recipe
    assert r2["epochs"] == 20 and not r2["restore_best"]  # fit(epochs=20); Keras keeps the last weights
    assert (r3["epochs"], r3["patience"], r3["monitor"]) == (50, 1, "val_loss")  # EarlyStopping(val_loss), patience 0
    assert get_spec("mlp").recipe["val_fraction"] == 0.0  # report 002 trains on all 60k


class _Says(torch.nn.Module):
    """A member that always answers with these probabilities."""

    def __init__(self, probs):
        super().__init__()
        self.logits = torch.tensor(probs).log()

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def _probs(cls, p):
    out = [(1 - p) / 9] * 10
    out[cls] = p
    return out


def test_majority_vote_counts_votes_first_and_breaks_ties_by_mean_probability():
    from fmnist.models import Ensemble

    x = torch.zeros(2, 1, 28, 28)
    two_to_one = Ensemble([{"arch": "logreg"}] * 3, vote="majority")
    two_to_one.members = torch.nn.ModuleList([_Says(_probs(0, 0.4)), _Says(_probs(0, 0.4)), _Says(_probs(1, 0.99))])
    assert two_to_one(x).argmax(1).tolist() == [0, 0]  # soft voting would say 1
    tie = Ensemble([{"arch": "logreg"}] * 2, vote="majority")
    tie.members = torch.nn.ModuleList([_Says(_probs(0, 0.6)), _Says(_probs(1, 0.9))])
    out = tie(x).exp()
    assert out.argmax(1).tolist() == [1, 1] and torch.allclose(out.sum(1), torch.ones(2))


def test_every_model_has_a_description():
    assert all(get_spec(n).description and not get_spec(n).description.startswith("None") for n in list_models())


@pytest.mark.parametrize("name", ["cnn2", "keras1", "keras2", "keras3"])
def test_pooling_before_relu_is_the_same_network_bit_for_bit(name, ds):
    """These models pool before their ReLU (faster); the textbook order gives the same outputs and gradients."""
    import copy

    torch.manual_seed(0)
    fast = create_model(name).to(memory_format=torch.channels_last).eval()  # no dropout: deterministic
    textbook, swapped = copy.deepcopy(fast), 0
    for seq in [m for m in textbook.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in [i for i in range(len(seq) - 1) if isinstance(seq[i], torch.nn.MaxPool2d)]:
            assert isinstance(seq[i + 1], torch.nn.ReLU)  # pool, then ReLU -> ReLU, then pool
            seq[i], seq[i + 1], swapped = seq[i + 1], seq[i], swapped + 1
    assert swapped >= 1
    assert textbook.state_dict().keys() == fast.state_dict().keys()  # checkpoints load into either
    x, y = to_input(ds.test_images[:64], True), ds.test_labels[:64]
    for m in (fast, textbook):
        F.cross_entropy(m(x), y).backward()
    assert torch.equal(fast(x), textbook(x))
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(fast.parameters(), textbook.parameters()))


def test_preact20_is_the_public_recipes_network():
    """3 stages of 3 pre-activation blocks (16/32/64, strides 1/2/2), 271,994 parameters as in the source."""
    import torch
    from torch import nn

    from fmnist.models import PreActBlock, PreActResNet

    m = create_model("preact20").eval()
    assert param_count("preact20") == 271_994
    blocks = list(m.blocks)
    assert len(blocks) == 9 and [b.first for b in blocks] == [True, False, False] * 3
    assert [b.conv1.stride[0] for b in blocks] == [1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert [type(b.shortcut) for b in blocks[::3]] == [nn.Identity, nn.Conv2d, nn.Conv2d]
    x = torch.randn(3, 1, 28, 28)
    assert m.blocks(m.stem(x)).shape == (3, 64, 7, 7) and m(x).shape == (3, 10)
    assert PreActResNet(32).blocks.__len__() == 15
    with pytest.raises(ValueError, match="6n\\+2"):
        PreActResNet(21)
    # A stage's first block pre-activates its input for the shortcut too; the others add the raw input.
    for first in (True, False):
        b = PreActBlock(4, 4, 1, first).eval()
        nn.init.zeros_(b.conv2.weight)  # the branch adds nothing: the output is the shortcut's input
        with torch.no_grad():
            b.bn1.bias.fill_(-0.1)
            y = torch.randn(2, 4, 5, 5)
            expect = torch.relu(b.bn1(y)) if first else y
            assert torch.allclose(b(y), expect)
    conv = m.blocks[4].conv1  # kaiming normal, fan_out: std sqrt(2 / (32 * 9))
    assert abs(float(conv.weight.detach().std()) - (2 / (32 * 9)) ** 0.5) < 0.01
    assert float(m.head[-1].bias.abs().max()) == 0.0 and float(m.head[0].weight.min()) == 1.0


def test_preact20s_recipe_is_the_sources():
    from fmnist.config import make_config

    cfg = make_config(recipe="preact20")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.optimizer, cfg.momentum) == (200, 128, 0.2, "sgd", 0.9)
    assert (cfg.weight_decay, cfg.schedule, cfg.val_fraction, cfg.restore_best) == (1e-4, "cosine", 0.0, False)
    a = cfg.augment
    assert (a.flip, a.crop, a.erase, a.erase_size, a.erase_value, a.shift) == (True, 4, 1.0, 16, 0.286, 0.0)
    assert get_spec("preact20").reported == 95.51


def test_cnn3bn_puts_batchnorm_after_the_relu_as_report_001_with_keras_constants():
    """Report 001: Conv2D(..., activation="relu") then BatchNormalization, and Dense 128 ReLU then BN:
    the preset builds that order (with the conv's and dense's biases and Keras's BN epsilon/momentum);
    without `keras_order`, the first checkpoints' conv-BN-ReLU still loads."""
    assert get_spec("cnn3bn").recipe["model_kwargs"] == {"keras_order": True}
    kinds = [type(m).__name__ for m in create_model("cnn3bn", keras_order=True).modules() if not list(m.children())]
    assert kinds[:6] == ["Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d", "Dropout", "Conv2d"]
    assert kinds[-6:] == ["Flatten", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"]
    assert kinds.count("ReLU") == 4 and kinds.index("ReLU") < kinds.index("BatchNorm2d")
    model = create_model("cnn3bn", keras_order=True)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    assert len(bns) == 4 and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(convs) == 5 and all(c.bias is not None for c in convs)
    assert param_count("cnn3bn") == 666_570  # the old order: no conv/dense bias
    # Keras's summary counts BN's moving mean and variance too: 668,298 = trainable 667,146 + 2 x 576
    assert param_count("cnn3bn", keras_order=True) + 2 * 576 == 668_298
    old = [type(m).__name__ for m in create_model("cnn3bn").modules() if not list(m.children())]
    assert old[:3] == ["Conv2d", "BatchNorm2d", "ReLU"]
