"""Bad input on one device: meshes with unknown axis names, rules naming axes the mesh
lacks, wrong argument types, checkpoints restored onto an incompatible model (named
leaf, before any array is read), and bad process settings."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

import fnnet.nn as nn
import fnnet.parallel as par
from fnnet.train import CheckpointError


def test_make_mesh_errors():
    with pytest.raises(ValueError, match=r"make_mesh: expected data \* model = 2 \* 1 = 2 devices at most, got 1"):
        par.make_mesh(2)
    with pytest.raises(ValueError, match=r"make_mesh: expected model to be a positive int, got 0"):
        par.make_mesh(model=0)
    with pytest.raises(ValueError, match=r"make_mesh: expected data \* model = 1 \* 1 = 1 devices, got 2"):
        par.make_mesh(1, devices=jax.devices() * 2)
    mesh = par.make_mesh()
    assert mesh.axis_names == ("data", "model") and mesh.devices.shape == (1, 1)


def test_unknown_axis_names_are_named():
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    for policy in (par.data_parallel, par.fully_sharded, par.tensor_parallel):
        with pytest.raises(ValueError, match=r"expected mesh axes among \('data', 'model'\), got "
                                             r"\('batch',\) \(unknown: \['batch'\]\)"):
            policy(mesh)
    with pytest.raises(ValueError, match="tensor_parallel: expected a mesh with a 'model' axis"):
        par.tensor_parallel(Mesh(np.asarray(jax.devices()), ("data",)))
    with pytest.raises(ValueError, match=r"rule '\^0/kernel\$' names mesh axes \['tensor'\]"):
        par.tensor_parallel(par.make_mesh(), [(r"^0/kernel$", P(None, "tensor"))])
    with pytest.raises(TypeError, match="tensor_parallel: expected rule 0 as \\(regex, PartitionSpec\\)"):
        par.tensor_parallel(par.make_mesh(), [(r"^0/kernel$", (None, "model"))])
    with pytest.raises(TypeError, match="shard_batch: expected a ShardingPolicy"):
        par.shard_batch(par.make_mesh(), np.zeros((2, 1)))
    with pytest.raises(TypeError, match="data_parallel: expected a jax.sharding.Mesh"):
        par.data_parallel("data")


def test_checkpoint_onto_incompatible_model(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    model = nn.serial(nn.dense(4), nn.relu, nn.dense(2))
    params, _ = model.init(jax.random.key(0), jax.ShapeDtypeStruct((3, 5), jnp.float32))
    par.save_sharded_checkpoint(tmp_path / "ck", {"params": params})
    wider, _ = nn.serial(nn.dense(8), nn.relu, nn.dense(2)).init(
        jax.random.key(0), jax.ShapeDtypeStruct((3, 5), jnp.float32))
    with pytest.raises(CheckpointError, match=r"holds params\.0\.bias as float32\[4\], but the "
                                              r"template expects float32\[8\]"):
        par.load_sharded_checkpoint(tmp_path / "ck", {"params": wider})
    deeper, _ = nn.serial(nn.dense(4), nn.relu, nn.dense(2), nn.dense(2)).init(
        jax.random.key(0), jax.ShapeDtypeStruct((3, 5), jnp.float32))
    with pytest.raises(CheckpointError, match=r"has no leaf 'params\.3\.bias' that the template expects"):
        par.load_sharded_checkpoint(tmp_path / "ck", {"params": deeper})
    with pytest.raises(CheckpointError, match="expected a checkpoint directory at .*missing, found none"):
        par.load_sharded_checkpoint(tmp_path / "missing", {"params": params})
    restored = par.load_sharded_checkpoint(tmp_path / "ck", {"params": params})
    jax.tree.map(np.testing.assert_array_equal, restored, {"params": params})


def test_initialize_rejects_bad_settings(monkeypatch):
    monkeypatch.setenv("FNNET_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="initialize: expected an integer in FNNET_NUM_PROCESSES, got 'two'"):
        par.initialize()
    monkeypatch.setenv("FNNET_NUM_PROCESSES", "2")
    monkeypatch.setenv("FNNET_PROCESS_ID", "2")
    with pytest.raises(ValueError, match=r"initialize: expected process_id in \[0, 2\), got 2"):
        par.initialize("localhost:1")
