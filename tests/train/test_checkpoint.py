"""fnnet.train.checkpoint: the file's contents read back with plain NumPy, atomic writes
(fsync of file and directory, no temporary file left after a success or a failed
write), one clear error for damaged files, and errors naming the mismatching leaf."""
import io
import os
import stat
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import optim, train
from fnnet.train import checkpoint as ckpt_module


def tree_example():
    params = {"dense": {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.zeros(3)}}
    return {"params": params, "opt": optim.adam(1e-3).init(params), "key": jax.random.key(4),
            "step": np.asarray(3, np.int32)}


def test_file_holds_the_leaves_in_flatten_order_readable_without_pickle(tmp_path):
    tree = tree_example()
    path = tmp_path / "c.npz"
    train.save_checkpoint(path, tree)
    assert os.listdir(tmp_path) == ["c.npz"]
    leaves = jax.tree.leaves(tree)
    with np.load(path, allow_pickle=False) as f:  # the reference reader: plain NumPy
        assert len(f["__paths__"]) == len(leaves)
        for i, leaf in enumerate(leaves):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                np.testing.assert_array_equal(f[f"key_{i}"], jax.random.key_data(leaf))
            else:
                stored = f[f"leaf_{i}"]
                assert stored.dtype == np.asarray(leaf).dtype
                np.testing.assert_array_equal(stored, np.asarray(leaf))
        assert "['params']['dense']['kernel']" in list(f["__paths__"])
    back = train.load_checkpoint(path, tree)
    assert type(back["opt"]) is type(tree["opt"])
    for a, b in zip(jax.tree.leaves(back), leaves):
        if jax.dtypes.issubdtype(b.dtype, jax.dtypes.prng_key):
            np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
        else:
            assert np.array_equal(np.asarray(a), np.asarray(b)) and np.asarray(a).dtype == np.asarray(b).dtype


def test_a_file_without_paths_still_loads_by_position(tmp_path):
    # The layout written before __paths__ existed: leaf_<i> / key_<i> only.
    path = tmp_path / "old.npz"
    np.savez(path, leaf_0=np.ones((2, 2), np.float32), key_1=np.asarray([0, 9], np.uint32))
    back = train.load_checkpoint(path, {"a": jnp.zeros((2, 2)), "k": jax.random.key(0)})
    np.testing.assert_array_equal(back["a"], np.ones((2, 2)))
    np.testing.assert_array_equal(jax.random.key_data(back["k"]), [0, 9])


def test_write_fsyncs_the_file_then_renames_then_fsyncs_the_directory(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt_module.os, "fsync", fsync)
    monkeypatch.setattr(ckpt_module.os, "replace", replace)
    train.save_checkpoint(tmp_path / "c.npz", tree_example())
    assert events == ["fsync file", "replace", "fsync dir"]


@pytest.mark.parametrize("fail_in", ["savez", "fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch, fail_in):
    path = tmp_path / "c.npz"
    train.save_checkpoint(path, {"w": np.ones(3, np.float32)})
    before = path.read_bytes()

    def half_written_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    if fail_in == "savez":
        monkeypatch.setattr(ckpt_module.np, "savez", half_written_savez)
    else:
        monkeypatch.setattr(ckpt_module.os, fail_in, broken)
    with pytest.raises(OSError):
        train.save_checkpoint(path, {"w": np.zeros(3, np.float32)})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["c.npz"]
    assert path.read_bytes() == before


def damaged_files(tmp_path):
    """(name, bytes) of files a crash, a bad copy or a wrong path can produce."""
    good = tmp_path / "good.npz"
    train.save_checkpoint(good, tree_example())
    data = good.read_bytes()
    crc = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    crc[info.header_offset + 30 + len(info.filename) + info.compress_size - 4] ^= 0xFF  # inside its data
    missing = io.BytesIO()
    with np.load(good) as f:
        np.savez(missing, **{k: f[k] for k in f.files if k != "leaf_2"})
    pickled = io.BytesIO()
    np.savez(pickled, leaf_0=np.asarray([{"a": 1}], dtype=object))
    single = io.BytesIO()
    np.save(single, np.ones(3))
    return {
        "empty": (b"", "empty"),
        "truncated": (data[:len(data) // 2], "damaged"),
        "truncated_tail": (data[:-10], "damaged"),
        "garbage": (b"\x00\x01" + bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
                    "not an .npz archive"),
        "bad_crc": (bytes(crc), "damaged"),
        "missing_entry": (missing.getvalue(), r"lacks leaf 2 \['opt'\]\[0\]\.mu\['dense'\]\['bias'\]"),
        "pickled": (pickled.getvalue(), "pickled"),
        "single_npy": (single.getvalue(), "single .npy"),
    }


def test_each_damaged_file_raises_one_error_naming_the_file(tmp_path):
    for name, (content, reason) in damaged_files(tmp_path).items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        with pytest.raises(train.CheckpointError, match=reason) as info:
            train.load_checkpoint(path, tree_example())
        assert str(path) in str(info.value), name
        assert isinstance(info.value, ValueError)
    with pytest.raises(FileNotFoundError):
        train.load_checkpoint(tmp_path / "absent.npz", tree_example())


def test_mismatch_names_the_leaf_and_both_specs(tmp_path):
    tree = tree_example()
    path = tmp_path / "c.npz"
    train.save_checkpoint(path, tree)
    wider = {**tree, "params": {"dense": {"kernel": jnp.zeros((2, 4)), "bias": jnp.zeros(3)}}}
    with pytest.raises(train.CheckpointError,
                       match=r"holds \['params'\]\['dense'\]\['kernel'\] as float32\[2, 3\], "
                             r"but the template expects float32\[2, 4\]"):
        train.load_checkpoint(path, wider)
    renamed = {**tree, "params": {"dense": {"kernel": jnp.zeros((2, 3)), "b": jnp.zeros(3)}}}
    with pytest.raises(train.CheckpointError, match=r"only in the checkpoint: .*\['params'\]\['dense'\]\['bias'\]"):
        train.load_checkpoint(path, renamed)
    with pytest.raises(train.CheckpointError, match=r"holds \['step'\] as int32\[\], but the template expects int64\[\]"):
        train.load_checkpoint(path, {**tree, "step": np.asarray(3, np.int64)})
