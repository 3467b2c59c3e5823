"""fnnet.models imports, from fnnet, only fnnet.nn, fnnet.functional and fnnet.init, and
fnnet.text.sampling for the GPT's generate (DESIGN.md section 2; docs/design.md, "What
the model zoo imports"), and every public constructor is exported by the package."""
import ast
import pathlib

import fnnet.models as models

ALLOWED = {"fnnet.nn", "fnnet.functional", "fnnet.init", "fnnet.models", "fnnet.text.sampling"}


def _fnnet_imports(path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fnnet"):
            if node.module == "fnnet":
                found.update(f"fnnet.{a.name}" for a in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fnnet"))
    return found


def test_models_import_only_nn_and_functional():
    files = sorted(pathlib.Path(models.__file__).parent.glob("*.py"))
    assert len(files) >= 7
    for path in files:
        for name in _fnnet_imports(path):
            assert any(name == a or name.startswith(a + ".") for a in ALLOWED), (path.name, name)


def test_public_constructors_exported():
    expected = {"lenet5", "cifar_resnet", "alexnet", "vgg16", "vgg19", "resnet18", "resnet34",
                "resnet50", "googlenet", "inception", "mobilenet_v1"}
    assert expected <= set(dir(models))
    assert all(callable(getattr(models, n)) for n in expected)


def test_constructors_reject_inputs_that_are_not_image_batches():
    import jax
    import jax.numpy as jnp
    import pytest

    not_images = jax.ShapeDtypeStruct((2, 32, 32), jnp.float32)  # (N, H, W): channel axis missing
    for model in (models.lenet5(), models.cifar_resnet(8), models.alexnet(), models.vgg16(),
                  models.resnet18(), models.googlenet(), models.googlenet(aux_logits=True),
                  models.mobilenet_v1()):
        with pytest.raises(ValueError, match=r"expected images \(N, H, W, C\), got an input of shape \(2, 32, 32\)"):
            model.init(jax.random.key(0), not_images)
