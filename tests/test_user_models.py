"""Loading a model you wrote: a factory in a package, a local hubconf.py, weights files, a models TOML."""

import pickle
import sys
import textwrap
import uuid
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file

from attnviz.models import UserModelError, load_model_specs, load_user_model
from attnviz.models.user import read_state_dict

# A tiny CNN with a DANet-style position attention block (the attribute names of the DANet code).
MODEL_SOURCE = """
import torch
import torch.nn.functional as F
from torch import nn


class PAM(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        b, c, h, w = x.shape
        query = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        key = self.key_conv(x).view(b, -1, h * w)
        attention = self.softmax(torch.bmm(query, key))
        value = self.value_conv(x).view(b, -1, h * w)
        out = torch.bmm(value, attention.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


class TinyDANet(nn.Module):
    def __init__(self, num_classes=5, mode="tensor"):
        super().__init__()
        self.mode = mode
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.pam = PAM(16)
        self.classifier = nn.Conv2d(16, num_classes, 1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        features = self.pam(self.stem(x))
        if self.mode == "classification":
            return self.fc(features.mean((2, 3)))
        logits = F.interpolate(self.classifier(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.mode == "dict":
            return {"out": logits, "aux": logits.detach() * 0}
        if self.mode == "tuple":
            return ("a label", logits, features)
        if self.mode == "mask":
            return logits.argmax(1)
        if self.mode == "text":
            return "no tensor"
        if self.mode == "fixed" and x.shape[-2:] != (64, 64):
            raise ValueError(f"needs 64x64 photos, got {tuple(x.shape[-2:])}")
        return logits


def build():
    return TinyDANet()


def build_classifier():
    return TinyDANet(num_classes=7, mode="classification")


def build_dict():
    return TinyDANet(mode="dict")


def build_tuple():
    return TinyDANet(mode="tuple")


def build_mask():
    return TinyDANet(mode="mask")


def build_text():
    return TinyDANet(mode="text")


def build_fixed():
    return TinyDANet(mode="fixed")


def broken():
    raise RuntimeError("the factory is broken on purpose")


def not_a_module():
    return 42


NOT_CALLABLE = 3
"""


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights and BN statistics that differ from any fresh model (gamma too, so PAM matters)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=generator) + (0.5 if "running_var" in name else -0.5))
    return model.eval()


@pytest.fixture
def package(tmp_path, monkeypatch):
    """(a folder holding a fresh package with a models.py, the package's unique name); cwd is that folder.

    The name is unique per test, so Python's import cache never hands one test another's module, and
    the package is dropped from sys.modules afterwards."""
    name = f"usernet_{uuid.uuid4().hex[:10]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "models.py").write_text(MODEL_SOURCE)
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    yield tmp_path, name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]
    assert sys.path == path_before  # the loader puts the folder on sys.path only while it imports


@pytest.fixture
def hub_repo(tmp_path):
    """A folder with a hubconf.py (dependencies = ["torch"]) whose entries build the tiny model."""
    repo = tmp_path / "hubrepo"
    repo.mkdir()
    (repo / "hubconf.py").write_text(
        'dependencies = ["torch"]\n'
        + MODEL_SOURCE
        + textwrap.dedent('''

        def tiny_danet(num_classes=5):
            """A tiny DANet-style segmentation model."""
            return TinyDANet(num_classes)
        ''')
    )
    return repo


def test_a_factory_in_a_package_loads_from_the_working_folder(package):
    folder, name = package
    assert str(folder) not in sys.path
    user = load_user_model(f"{name}.models:build", input_size=(32, 48))
    assert not user.model.training
    assert (user.task, user.num_classes, user.output_shape, user.output_rule) == (
        "segmentation",
        5,
        (1, 5, 32, 48),
        "tensor",
    )
    assert user.name == "build" and user.spec == f"{name}.models:build" and user.input_size == (32, 48)
    assert user.weights is None and user.mean is None and user.std is None and user.classes is None
    pam = user.model.pam
    assert all(hasattr(pam, a) for a in ("query_conv", "key_conv", "value_conv", "gamma", "softmax"))
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        assert torch.equal(user.forward_logits(x), user.model(x))
    # the default probe size is documented: 224 x 224
    assert load_user_model(f"{name}.models:build").input_size == (224, 224)


def test_mean_and_std_normalise_the_input_in_forward_logits(package):
    _, name = package
    user = load_user_model(f"{name}.models:build", input_size=(16, 16), mean=[0.5, 0.4, 0.3], std=(0.2, 0.25, 0.5))
    x = torch.rand(1, 3, 16, 16)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    expected_input = (x - mean) / std
    with torch.no_grad():
        torch.testing.assert_close(user.forward_logits(x), user.model(expected_input))
    with pytest.raises(UserModelError, match="std must be 3 positive numbers"):
        load_user_model(f"{name}.models:build", std=(1, 0, 1))


def test_a_local_hub_repo_loads_with_torch_hub(hub_repo, monkeypatch):
    monkeypatch.setattr(torch.hub, "_git_archive_link", lambda *a, **k: pytest.fail("no network"), raising=False)
    user = load_user_model(f"{hub_repo}:tiny_danet", input_size=(32, 32))
    assert (user.task, user.num_classes, user.name) == ("segmentation", 5, "tiny_danet")
    monkeypatch.chdir(hub_repo.parent)  # a relative folder works too
    assert load_user_model("hubrepo:tiny_danet", input_size=(32, 32)).num_classes == 5


@pytest.mark.parametrize(
    "wrap",
    ["plain", "state_dict", "model", "model_state", "net", "module_prefix", "state_dict_module_prefix", "nested"],
)
def test_pt_checkpoints_in_their_usual_wrappers_give_the_original_outputs(package, tmp_path, wrap):
    _, name = package
    spec = f"{name}.models:build"
    reference = _randomise(load_user_model(spec, input_size=(32, 32)).model, seed=1)
    state = OrderedDict(reference.state_dict())
    prefixed = OrderedDict((f"module.{k}", v) for k, v in state.items())
    payload = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3, "optimizer": {"lr": 0.1}},
        "model": {"model": state, "args": ["--lr", "0.1"]},
        "model_state": {"model_state": state},
        "net": {"net": state},
        "module_prefix": prefixed,
        "state_dict_module_prefix": {"state_dict": prefixed, "best_miou": 0.5},
        "nested": {"model": {"state_dict": state}},
    }[wrap]
    torch.save(payload, tmp_path / "weights.pt")
    user = load_user_model(spec, tmp_path / "weights.pt", input_size=(32, 32))
    fresh = load_user_model(spec, input_size=(32, 32))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(user.forward_logits(x), reference(x))
        assert not torch.allclose(fresh.forward_logits(x), reference(x))
    assert user.weights == tmp_path / "weights.pt"


def test_a_module_prefix_on_only_some_keys_is_kept_and_named(package, tmp_path):
    _, name = package
    state = load_user_model(f"{name}.models:build", input_size=(16, 16)).model.state_dict()
    keys = list(state)
    mixed = {(f"module.{k}" if i == 0 else k): v for i, (k, v) in enumerate(state.items())}
    torch.save(mixed, tmp_path / "mixed.pth")
    with pytest.raises(UserModelError) as error:
        load_user_model(f"{name}.models:build", tmp_path / "mixed.pth", input_size=(16, 16))
    assert f"missing (1): {keys[0]}" in str(error.value) and f"unexpected (1): module.{keys[0]}" in str(error.value)


def test_safetensors_and_bin_weights_load(package, tmp_path):
    _, name = package
    spec = f"{name}.models:build"
    reference = _randomise(load_user_model(spec, input_size=(32, 32)).model, seed=2)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "w.safetensors"))
    torch.save(reference.state_dict(), tmp_path / "w.bin")
    x = torch.rand(1, 3, 32, 32)
    for file in ("w.safetensors", "w.bin"):
        user = load_user_model(spec, str(tmp_path / file), input_size=(32, 32))
        with torch.no_grad():
            assert torch.equal(user.forward_logits(x), reference(x)), file


class Payload:
    """Unpickling this runs open(marker, "w"): it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_a_pickle_payload_in_a_pt_file_is_never_executed(package, tmp_path, how):
    _, name = package
    # the payload is real: plain unpickling does create the marker
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control))).close()
    assert control.exists()
    marker = tmp_path / "marker"
    state = load_user_model(f"{name}.models:build", input_size=(16, 16)).model.state_dict()
    payload = {"state_dict": state, "extra": Payload(marker)}
    if how == "torch.save":
        torch.save(payload, tmp_path / "evil.pt")
    else:
        (tmp_path / "evil.pt").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UserModelError) as error:
        load_user_model(f"{name}.models:build", tmp_path / "evil.pt", input_size=(16, 16))
    assert not marker.exists()
    message = str(error.value)
    assert "evil.pt holds pickled Python objects" in message and "weights_only=True" in message
    assert "weights_only=False" not in message and "\n" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no chained traceback


@pytest.mark.parametrize("file", ["weights.safetensors", "weights.pt", "weights.pth", "empty.bin"])
def test_a_text_file_as_weights_is_one_message(package, tmp_path, file):
    _, name = package
    (tmp_path / file).write_text("" if file.startswith("empty") else "these are not weights\n")
    with pytest.raises(UserModelError) as error:
        load_user_model(f"{name}.models:build", tmp_path / file)
    message = str(error.value)
    assert file in message and "\n" not in message and "Traceback" not in message
    assert (
        "not a readable safetensors file (SafetensorError" in message
        if file.endswith(".safetensors")
        else "is not a PyTorch weights file" in message
    )
    assert error.value.__context__ is None or error.value.__suppress_context__  # no chained traceback


def test_other_weights_problems(package, tmp_path):
    _, name = package
    spec = f"{name}.models:build"
    with pytest.raises(UserModelError, match="does not exist"):
        load_user_model(spec, tmp_path / "absent.pt")
    with pytest.raises(UserModelError, match=r"must end in one of \.safetensors, \.pt, \.pth, \.bin"):
        load_user_model(spec, tmp_path / "weights.ckpt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "no_state.pt")
    with pytest.raises(UserModelError, match="not a state dict of tensors: 2 of its 2 entries"):
        load_user_model(spec, tmp_path / "no_state.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(UserModelError, match="list.pt holds list, not a state dict"):
        load_user_model(spec, tmp_path / "list.pt")


def test_weights_that_do_not_fit_name_the_keys_and_counts(package, tmp_path):
    _, name = package
    spec = f"{name}.models:build"
    model = load_user_model(spec, input_size=(16, 16)).model
    state = dict(model.state_dict())
    state["classifier.weight"] = torch.zeros(9, 16, 1, 1)  # 9 classes, the model has 5
    state["classifier.bias"] = torch.zeros(9)
    del state["pam.gamma"], state["fc.weight"]
    state["head.extra"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "wrong.pt")
    with pytest.raises(UserModelError) as error:
        load_user_model(spec, tmp_path / "wrong.pt")
    lines = str(error.value).splitlines()
    assert lines[0] == "wrong.pt does not fit the model:"
    assert lines[1:] == [
        "  missing (2): fc.weight, pam.gamma",
        "  unexpected (1): head.extra",
        "  shape mismatch (2): classifier.bias: file (9,) vs model (5,), "
        "classifier.weight: file (9, 16, 1, 1) vs model (5, 16, 1, 1)",
    ]


def test_a_classification_model(package):
    _, name = package
    user = load_user_model(
        f"{name}.models:build_classifier", input_size=(32, 32), classes=[f"class {i}" for i in range(7)]
    )
    assert (user.task, user.num_classes, user.output_shape) == ("classification", 7, (1, 7))
    assert user.classes == tuple(f"class {i}" for i in range(7))
    assert user.forward_logits(torch.rand(3, 3, 40, 40)).shape == (3, 7)
    with pytest.raises(UserModelError, match="3 class names given but the model outputs 7 classes"):
        load_user_model(f"{name}.models:build_classifier", input_size=(32, 32), classes=["a", "b", "c"])


@pytest.mark.parametrize("factory, rule", [("build_dict", 'dict["out"]'), ("build_tuple", "tuple[1]")])
def test_dict_and_tuple_outputs_are_unwrapped(package, factory, rule):
    _, name = package
    user = load_user_model(f"{name}.models:{factory}", input_size=(32, 32))
    assert (user.task, user.num_classes, user.output_rule) == ("segmentation", 5, rule)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        raw = user.model(x)
        expected = raw["out"] if isinstance(raw, dict) else raw[1]
        assert torch.equal(user.forward_logits(x), expected)


@pytest.mark.parametrize(
    "factory, what",
    [("build_mask", "a tensor of shape (1, 32, 32) of torch.int64"), ("build_text", "a str, not a tensor")],
)
def test_other_outputs_are_refused_naming_what_came_out(package, factory, what):
    _, name = package
    with pytest.raises(UserModelError, match="the model returned " + what.replace("(", r"\(").replace(")", r"\)")):
        load_user_model(f"{name}.models:{factory}", input_size=(32, 32))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_colon_here", "must be 'package.module:callable' or 'path/to/repo:entry'"),
        ("{pkg}.models:", "must name both sides"),
        ("not a module:build", "is neither a module name nor a folder"),
        ("{pkg}.absent:build", "no module '{pkg}.absent' importable"),
        ("absent_pkg_xyz.models:build", "no module 'absent_pkg_xyz' importable"),
        ("{pkg}.models:absent", "module '{pkg}.models' has no attribute 'absent'"),
        ("{pkg}.models:NOT_CALLABLE", "{pkg}.models.NOT_CALLABLE is a int, not a callable"),
        ("{pkg}.models:not_a_module", "gave a int, not a torch.nn.Module"),
        (
            "{pkg}.models:broken",
            r"calling {pkg}.models.broken\(\) failed \(RuntimeError: the factory is broken on purpose\)",
        ),
    ],
)
def test_a_spec_that_does_not_resolve_is_one_message(package, spec, message):
    _, name = package
    with pytest.raises(UserModelError, match=message.format(pkg=name)) as error:
        load_user_model(spec.format(pkg=name))
    assert "\n" not in str(error.value) and isinstance(error.value, ValueError)


def test_a_module_that_fails_to_import_is_one_message(package):
    folder, name = package
    (folder / name / "bad.py").write_text("import torch\nraise ImportError('needs a package you lack')\n")
    with pytest.raises(UserModelError, match=r"importing '\w+\.bad' failed \(ImportError: needs a package you lack\)"):
        load_user_model(f"{name}.bad:build")
    (folder / name / "typo.py").write_text("def build(:\n")
    with pytest.raises(UserModelError, match=r"importing '\w+\.typo' failed \(SyntaxError"):
        load_user_model(f"{name}.typo:build")


def test_a_hubconf_without_the_entry_or_with_a_failing_one(hub_repo, tmp_path):
    with pytest.raises(UserModelError, match=r"hubconf.py has no entry 'absent' \(its entries: .*tiny_danet"):
        load_user_model(f"{hub_repo}:absent")
    (hub_repo / "hubconf.py").write_text(
        (hub_repo / "hubconf.py").read_text() + "\n\ndef failing():\n    raise ValueError('no such size')\n"
    )
    with pytest.raises(UserModelError, match=r"entry 'failing' .* failed \(ValueError: no such size\)"):
        load_user_model(f"{hub_repo}:failing")
    (tmp_path / "nohub").mkdir()
    with pytest.raises(UserModelError, match="the folder .*nohub has no hubconf.py"):
        load_user_model(f"{tmp_path / 'nohub'}:entry")


def test_a_model_that_cannot_run_on_the_probe_says_so(package):
    _, name = package
    with pytest.raises(
        UserModelError,
        match=r"on a dummy photo \(1, 3, 224, 224\) failed \(ValueError: needs 64x64 "
        r"photos, got \(224, 224\)\); set input_size",
    ):
        load_user_model(f"{name}.models:build_fixed")
    assert load_user_model(f"{name}.models:build_fixed", input_size=[64, 64]).output_shape == (1, 5, 64, 64)
    with pytest.raises(UserModelError, match="input_size must be"):
        load_user_model(f"{name}.models:build", input_size=(0, 10))


def test_a_toml_with_two_models_and_a_classes_file(package, hub_repo, tmp_path, monkeypatch):
    folder, name = package
    config = tmp_path / "config"
    config.mkdir()
    (config / "classes.txt").write_text("sky\nroad\n\ncar\nperson\nbike\n")
    reference = _randomise(load_user_model(f"{hub_repo}:tiny_danet", input_size=(32, 32)).model, seed=3)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(config / "hub.safetensors"))
    (tmp_path / "models.toml").write_text(
        textwrap.dedent(f'''
        [models.mine]
        factory = "{name}.models:build"
        input_size = [32, 48]
        mean = [0.485, 0.456, 0.406]
        std = [0.229, 0.224, 0.225]

        [models."hub model"]
        hub = "hubrepo:tiny_danet"
        weights = "config/hub.safetensors"
        classes = "config/classes.txt"
        input_size = [32, 32]
        ''')
    )
    monkeypatch.chdir(config)  # paths and the factory's package are found beside the TOML file, not in cwd
    specs = load_model_specs("../models.toml")
    assert [s.name for s in specs] == ["mine", "hub model"]
    mine, hub = specs
    assert (mine.kind, mine.spec, mine.input_size) == ("factory", f"{name}.models:build", (32, 48))
    assert mine.mean == (0.485, 0.456, 0.406) and mine.weights is None and mine.classes is None
    assert (hub.kind, hub.entry, hub.weights) == ("hub", "tiny_danet", config / "hub.safetensors")
    assert hub.target == str(hub_repo) and hub.classes == ("sky", "road", "car", "person", "bike")
    first, second = mine.load(), hub.load()
    assert (first.name, first.output_shape, first.mean) == ("mine", (1, 5, 32, 48), (0.485, 0.456, 0.406))
    assert (second.name, second.classes, second.task) == ("hub model", hub.classes, "segmentation")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(second.forward_logits(x), reference(x))


def test_a_toml_with_bad_values_lists_every_problem_and_runs_nothing(tmp_path):
    (tmp_path / "models.toml").write_text(
        textwrap.dedent("""
        [models.a]
        factory = "mynet:build"
        input_size = [0, "wide"]
        mean = [0.5, 0.5]
        std = [1, 1, -1]
        weights = "absent.pt"
        classes = "absent.txt"
        colour = "red"

        [models.b]
        factory = "x:y"
        hub = "repo:entry"

        [models.c]
        factory = "not a spec"
        weights = 3

        [models.d]
        hub = "nowhere:entry"
        """)
    )
    with pytest.raises(UserModelError) as error:
        load_model_specs(tmp_path / "models.toml")
    lines = str(error.value).splitlines()
    assert lines[0] == "models.toml: 10 problems:"
    expected = [
        "[models.a]: unknown key(s) 'colour'",
        "[models.a]: 'weights' file",
        "absent.pt does not exist",
        "[models.a]: 'input_size' must be [height, width], two integers from 1 to 8192, got [0, 'wide']",
        "[models.a]: 'mean' must be 3 numbers (R, G, B), got [0.5, 0.5]",
        "[models.a]: 'std' must be 3 positive numbers, got [1, 1, -1]",
        "[models.a]: classes file",
        "absent.txt does not exist",
        "[models.b] needs exactly one of 'factory'",
        "[models.c]: 'factory' must be a string package.module:callable, got 'not a spec'",
        "[models.c]: 'weights' must be a file path (a string), got 3",
        "[models.d]: 'hub' folder",
        "nowhere does not exist",
    ]
    text = str(error.value)
    assert all(part in text for part in expected), text
    assert all(line.startswith("  [models.") for line in lines[1:])


@pytest.mark.parametrize(
    "content, message",
    [
        ("[models.a\n", r"is not valid TOML \(TOMLDecodeError"),
        ("title = 'x'\n", r"no \[models.NAME\] table"),
        ("[models]\na = 3\n", r"\[models.a\] must be a table, got int"),
        ("[other.a]\nfactory = 'm:f'\n", "unknown top-level key"),
    ],
)
def test_a_toml_that_is_not_a_models_file(tmp_path, content, message):
    (tmp_path / "models.toml").write_text(content)
    with pytest.raises(UserModelError, match=message):
        load_model_specs(tmp_path / "models.toml")
    with pytest.raises(UserModelError, match="does not exist"):
        load_model_specs(tmp_path / "absent.toml")


def test_read_state_dict_strips_nested_wrapper_prefixes(tmp_path):
    state = {"_orig_mod.module.conv.weight": torch.ones(2), "_orig_mod.module.conv.bias": torch.zeros(2)}
    save_file(state, str(tmp_path / "w.safetensors"))
    assert set(read_state_dict(tmp_path / "w.safetensors")) == {"conv.weight", "conv.bias"}
