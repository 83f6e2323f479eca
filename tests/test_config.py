"""TrainConfig checks, option descriptions and recipe/preset resolution, value by value."""

import math

import pytest

from fmnist.config import (
    DEFAULT_PRESET,
    PRESETS,
    Augment,
    ConfigError,
    Described,
    TrainConfig,
    base_recipe,
    check,
    explain_config,
    make_config,
    option_fields,
    trainable_models,
)
from fmnist.models import get_spec


def _d(name: str) -> Described:
    return next(d for d in option_fields() if d.name == name)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("epochs", 2.5, "epochs must be an integer, got 2.5"),
        ("epochs", True, "epochs must be an integer, got True"),
        ("epochs", None, "epochs must be an integer, got None"),
        ("epochs", 0, r"epochs must be in \[1, 1000\], got 0"),
        ("epochs", 1001, r"epochs must be in \[1, 1000\], got 1001"),
        ("lr", "x", "lr must be a number, got 'x'"),
        ("lr", math.nan, "lr must be a number, got nan"),
        ("lr", math.inf, "lr must be a number, got inf"),
        ("lr", 0.0, r"lr must be in \[1e-06, 10\], got 0.0"),
        ("lr", 10.5, r"lr must be in \[1e-06, 10\], got 10.5"),
        ("optimizer", "rmsprop", "optimizer must be one of adam, adamw, sgd; got 'rmsprop'"),
        ("restore_best", 1, "restore_best must be true or false, got 1"),
        ("tta_flip", "yes", "tta_flip must be true or false, got 'yes'"),
        ("patience", 0, r"patience must be in \[1, 1000\], got 0"),
        ("patience", 2.0, "patience must be an integer, got 2.0"),
        ("subset", 9, r"subset must be in \[10, 60000\], got 9"),
    ],
)
def test_check_messages_name_the_option_and_the_rule(name, value, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        check(_d(name), value)


@pytest.mark.parametrize(
    "name, value",
    [
        ("epochs", 1),
        ("epochs", 1000),
        ("lr", 1e-6),
        ("lr", 10),
        ("lr", 1),
        ("patience", None),
        ("subset", None),
        ("batch_size", 2),
        ("weight_decay", 0.0),
        ("shift", 0.5),
        ("restore_best", False),
        ("optimizer", "sgd"),
    ],
)
def test_check_accepts_the_edges_of_each_range(name, value):
    check(_d(name), value)


def test_none_is_only_off_for_optional_options():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=None)
    assert TrainConfig(patience=None, subset=None).patience is None


def test_described_kind_and_names():
    assert _d("patience").kind is int and _d("subset").kind is int  # from Opt.kind (default None)
    assert _d("lr").kind is float and _d("epochs").kind is int and _d("tta_flip").kind is bool
    assert _d("optimizer").kind is str and _d("rotate").kind is float
    names = [d.name for d in option_fields()]
    assert "arch" not in names and "model_kwargs" not in names and "augment" not in names  # cli=False
    assert names[:2] == ["epochs", "batch_size"] and names[-9:] == [
        "flip",
        "shift",
        "rotate",
        "zoom",
        "erase",
        "erase_size",
        "erase_value",
        "crop",
        "photo",
    ]
    assert _d("rotate").opt.label == "Rotation (degrees)" and _d("rotate").opt.hi == 180


def test_augment_options_are_checked_with_a_dotted_name():
    with pytest.raises(ConfigError, match=r"^augment.zoom must be in \[0, 0.5\], got 0.6$"):
        TrainConfig(augment={"zoom": 0.6})
    with pytest.raises(ConfigError, match="^unknown augment option\\(s\\): bogus, wobble$"):
        TrainConfig(augment={"wobble": 1, "bogus": 2})
    cfg = TrainConfig(augment={"flip": True})
    assert isinstance(cfg.augment, Augment) and cfg.augment.flip and cfg.augment.shift == 0.0


def test_arch_and_kwargs_messages():
    with pytest.raises(ConfigError, match="^arch: unknown model 'vgg'; valid: "):
        TrainConfig(arch="vgg")
    with pytest.raises(ConfigError, match="^arch: 'ensemble' is not trained"):
        TrainConfig(arch="ensemble")
    with pytest.raises(ConfigError, match="^model_kwargs must be a dict"):
        TrainConfig(model_kwargs=[5])
    with pytest.raises(ConfigError, match=r"^unknown training option\(s\): a, b$"):
        TrainConfig.from_dict({"b": 1, "a": 2, "epochs": 3})


def test_to_dict_from_dict_roundtrip():
    cfg = TrainConfig(arch="mlp", epochs=3, augment={"rotate": 5.0})
    d = cfg.to_dict()
    assert d["augment"] == {
        "flip": False,
        "shift": 0.0,
        "rotate": 5.0,
        "zoom": 0.0,
        "erase": 0.0,
        "erase_size": 0,
        "erase_value": 0.0,
        "crop": 0,
        "photo": 0.0,
    }
    assert TrainConfig.from_dict(d) == cfg


def test_trainable_models_are_the_trainable_specs():
    names = trainable_models()
    assert "ensemble" not in names and "mlp" in names and "resnet" in names
    assert all(get_spec(n).trainable for n in names)


def test_presets_quick_best_and_resnet64():
    assert DEFAULT_PRESET == "quick" and "quickcnn" not in PRESETS
    assert PRESETS["quick"]["arch"] == "quickcnn"
    assert PRESETS["best"] == PRESETS["preact20"] and PRESETS["best"] is not PRESETS["preact20"]  # its own copy
    assert make_config(preset="best") == make_config(recipe="preact20")  # `--preset best` trains `--arch preact20`
    assert (PRESETS["best"]["epochs"], PRESETS["best"]["val_fraction"]) == (200, 0.0)  # the source's: all 60k, 200
    resnet64, resnet = PRESETS["resnet64"], PRESETS["resnet"]
    same = lambda d: {k: v for k, v in d.items() if k not in ("epochs", "label_smoothing", "augment")}
    assert same(resnet64) == same(resnet) and (resnet64["epochs"], resnet64["label_smoothing"]) == (64, 0.2)
    assert resnet64["augment"]["erase_size"] == 12 and resnet64["augment"]["erase"] == 1.0  # Cutout on every image
    assert make_config().arch == "quickcnn"  # no preset and no recipe: the default preset


def test_base_recipe_copies_and_names_its_source():
    src, d = base_recipe("cnn3bn")
    assert src == "preset 'cnn3bn'"
    d["augment"]["rotate"] = 99
    assert PRESETS["cnn3bn"]["augment"]["rotate"] == 10  # a deep copy: the preset is untouched
    src, d = base_recipe(recipe="cnn3bn")
    assert src == "the cnn3bn recipe" and d["arch"] == "cnn3bn"
    d["augment"]["rotate"] = 99
    assert get_spec("cnn3bn").recipe["augment"]["rotate"] == 10
    with pytest.raises(ConfigError, match="vgg"):
        base_recipe(recipe="vgg")
    with pytest.raises(ConfigError, match="^'ensemble' is not trained"):
        base_recipe(recipe="ensemble")
    with pytest.raises(ConfigError, match="^unknown preset 'nope'; valid presets: .*quick"):
        base_recipe("nope")


def test_explain_config_merges_augment_over_the_recipe():
    cfg, origin = explain_config("cnn3bn", zoom=0.2, epochs=None)
    assert cfg.augment.zoom == 0.2 and cfg.augment.rotate == 10  # the recipe's rotation is kept
    assert origin["zoom"] == "command line" and origin["rotate"] == "preset 'cnn3bn'" and origin["erase"] == "default"
    assert origin["epochs"] == "preset 'cnn3bn'" and origin["arch"] == "preset 'cnn3bn'"
    cfg, origin = explain_config("logreg", flip=True)
    assert cfg.augment.flip and origin["flip"] == "command line" and origin["augment"] == "preset 'logreg'"
    _, origin = explain_config("logreg")
    assert origin["augment"] == "default"


def test_zero_turns_an_optional_option_off():
    cfg, origin = explain_config("keras3", patience=0, subset=0, time_budget=0)
    assert (cfg.patience, cfg.subset, cfg.time_budget) == (None, None, None)
    assert origin["patience"] == "command line"
    assert explain_config("keras3")[0].patience == 1  # the recipe's early stopping stands when not given


@pytest.mark.parametrize(
    "name, text, value",
    [
        ("flip", "true", True),
        ("flip", "FALSE", False),
        ("flip", "1", True),
        ("flip", "0", False),
        ("flip", " yes ", True),
        ("flip", "off", False),
        ("epochs", "3", 3),
        ("epochs", "3.0", 3),
        ("lr", "0.01", 0.01),
        ("lr", "1e-3", 0.001),
        ("optimizer", "sgd", "sgd"),
        ("patience", "0", 0),
        ("subset", "0", 0),
        ("time_budget", "0", 0.0),
        ("subset", "5000", 5000),
        ("rotate", "15", 15.0),
    ],
)
def test_parse_value_is_one_set_of_rules(name, text, value):
    from fmnist.config import options, parse_value

    got = parse_value(options()[name], text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("flip", "maybe", "flip must be true or false, got 'maybe'"),
        ("flip", "2", "flip must be true or false, got '2'"),
        ("epochs", "2.5", "epochs must be an integer, got '2.5'"),
        ("epochs", "two", "epochs must be an integer, got 'two'"),
        ("epochs", "inf", "epochs must be an integer, got 'inf'"),
        ("epochs", "0", r"epochs must be in \[1, 1000\], got 0"),
        ("lr", "nan", "lr must be a number, got 'nan'"),
        ("lr", "-inf", "lr must be a number, got '-inf'"),
        ("lr", "", "lr must be a number, got ''"),
        ("lr", "20", r"lr must be in \[1e-06, 10\], got 20.0"),
        ("optimizer", "rmsprop", "optimizer must be one of adam, adamw, sgd; got 'rmsprop'"),
        ("patience", "-1", r"patience must be in \[1, 1000\], got -1"),
    ],
)
def test_parse_value_refuses_in_one_line_naming_the_option(name, text, message):
    from fmnist.config import options, parse_value

    with pytest.raises(ConfigError, match=f"^{message}$"):
        parse_value(options()[name], text)


def test_links_sweeps_and_flags_share_the_parser(capsys):
    """The same text gives the same value, or the same refusal, through a sweep's --param and a CLI flag."""
    from fmnist.cli import _option_overrides, parser
    from fmnist.sweep import SweepError, parse_param

    a = parser().parse_args(["train", "--epochs", "3.0", "--patience", "0", "--optimizer", "sgd"])
    given = _option_overrides(a)
    assert (given["epochs"], given["patience"], given["optimizer"]) == (3, 0, "sgd")
    assert parse_param("epochs=3.0,4").choices == (3, 4) and parse_param("flip=1,0").choices == (True, False)
    assert parse_param("patience=0,3").choices == (0, 3)  # 0: early stopping off, as on the command line
    with pytest.raises(SweepError, match="epochs must be an integer, got '2.5'"):
        parse_param("epochs=2.5,3")
    with pytest.raises(ConfigError, match="epochs must be an integer, got '2.5'"):
        _option_overrides(parser().parse_args(["train", "--epochs", "2.5"]))


def test_the_student_preset_is_quick_on_5000_images_with_narrower_stages_and_changes_nothing_of_quick():
    from dataclasses import replace

    quick, student = make_config(preset="quick"), make_config(preset="student")
    assert quick.subset is None and student.subset == 5000
    assert quick.model_kwargs == {} and student.model_kwargs == {"widths": [16, 48, 192]}
    assert replace(student, subset=None, model_kwargs={}) == quick  # every other option is quick's
    _, recipe = base_recipe("student")
    recipe.setdefault("augment", {})["flip"] = True  # a caller changing its copy
    recipe["epochs"] = 99
    assert make_config(preset="quick") == quick and make_config(preset="student") == student
    shared = [k for k, v in PRESETS["quick"].items() if isinstance(v, dict) and PRESETS["student"].get(k) is v]
    assert shared == []  # no dict that one preset could change for both


def test_another_architecture_drops_the_recipes_architecture_options_unless_given():
    """The student's widths are quickcnn's: a student who picks the MLP gets an MLP, not an error."""
    assert make_config(preset="student", arch="mlp").model_kwargs == {}
    assert make_config(preset="student", arch="quickcnn").model_kwargs == {"widths": [16, 48, 192]}
    assert make_config(preset="cnn3bn", arch="cnn2").model_kwargs == {}
    assert make_config(preset="cnn3bn").model_kwargs == {"keras_order": True}
    assert make_config(preset="student", arch="cnn2", model_kwargs={"kernel_size": 5}).model_kwargs == {
        "kernel_size": 5
    }
    assert make_config(preset="student", model_kwargs={"widths": [8, 8, 8]}).model_kwargs == {"widths": [8, 8, 8]}
    assert make_config(recipe="cnn3bn", arch="cnn3bn").model_kwargs == {"keras_order": True}
    assert make_config(preset="quick", arch="mlp").model_kwargs == {}  # a recipe without options


def test_the_photo_preset_is_the_resnet_recipe_run_resnet64s_epochs_with_photo_like_images():
    photo, resnet = PRESETS["photo"], PRESETS["resnet"]
    same = {k: v for k, v in resnet.items() if k not in ("augment", "epochs")}
    assert {k: v for k, v in photo.items() if k not in ("augment", "epochs")} == same
    assert photo["epochs"] == PRESETS["resnet64"]["epochs"] == 64 and resnet["epochs"] == 24
    assert photo["augment"] == {"flip": True, "shift": 0.1, "rotate": 12.0, "zoom": 0.1, "erase": 0.5, "photo": 0.5}
    cfg = make_config(preset="photo", photo=0.2, crop=2, erase_value=0.5)
    assert (cfg.augment.photo, cfg.augment.crop, cfg.augment.erase_value, cfg.augment.rotate) == (0.2, 2, 0.5, 12.0)


@pytest.mark.parametrize("name, bad", [("photo", 1.5), ("crop", 15), ("crop", -1), ("erase_value", 2.0)])
def test_the_new_augmentations_check_their_ranges(name, bad):
    with pytest.raises(ConfigError, match=name):
        make_config(**{name: bad})
