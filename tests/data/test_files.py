"""IDX and CIFAR-10 readers on small files written by the tests."""
import gzip
import pickle
import struct

import numpy as np
import pytest

from fnnet import data


def _write_idx(path, arr, code, gz=False):
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(body)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_labels(tmp_path, rng, gz):
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"img-idx3-ubyte{suffix}", images, 0x08, gz)
    _write_idx(tmp_path / f"lab-idx1-ubyte{suffix}", labels, 0x08, gz)
    x = data.load_mnist_idx(tmp_path / f"img-idx3-ubyte{suffix}")
    y = data.load_mnist_idx(tmp_path / f"lab-idx1-ubyte{suffix}")
    assert x.shape == (5, 4, 3, 1) and x.dtype == np.float32
    assert y.shape == (5,) and y.dtype == np.int32
    for n in range(5):                         # element by element against the written array
        for i in range(4):
            for j in range(3):
                assert x[n, i, j, 0] == images[n, i, j]
    np.testing.assert_array_equal(y, labels)


def test_idx_other_types_and_errors(tmp_path, rng):
    a = rng.normal(size=(2, 3)).astype(np.float32)
    _write_idx(tmp_path / "f.idx", a, 0x0D)
    np.testing.assert_array_equal(data.load_mnist_idx(tmp_path / "f.idx"), a)
    b = rng.integers(-1000, 1000, size=(4,)).astype(np.int32)
    _write_idx(tmp_path / "i.idx", b, 0x0C)
    np.testing.assert_array_equal(data.load_mnist_idx(tmp_path / "i.idx"), b)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.load_mnist_idx(tmp_path / "bad")
    raw = (tmp_path / "i.idx").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="header says shape"):
        data.load_mnist_idx(tmp_path / "short")


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_batch(tmp_path, rng, protocol):
    n = 3
    raw = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"batch_label": b"training batch 1 of 5", b"labels": labels, b"data": raw,
                     b"filenames": [b"a.png"] * n}, f, protocol=protocol)
    x, y = data.load_cifar10_batch(tmp_path / "data_batch_1")
    assert x.shape == (n, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    for k in range(n):   # pixel (i, j) of channel c sits at c*1024 + i*32 + j
        for c, i, j in [(0, 0, 0), (1, 5, 7), (2, 31, 31), (2, 3, 30)]:
            assert x[k, i, j, c] == raw[k, c * 1024 + i * 32 + j]
    np.testing.assert_array_equal(y, labels)


def test_cifar10_refuses_code_and_wrong_content(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with open(tmp_path / "evil", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.load_cifar10_batch(tmp_path / "evil")
    with open(tmp_path / "other", "wb") as f:
        pickle.dump({b"fine_labels": [1]}, f)
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        data.load_cifar10_batch(tmp_path / "other")


def test_load_mnist_directory(tmp_path, rng):
    arrays = {}
    for split, n, gz in (("train", 4, True), ("t10k", 2, False)):
        arrays[split] = (rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
                         rng.integers(0, 10, size=n, dtype=np.uint8))
        sfx = ".gz" if gz else ""
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte{sfx}", arrays[split][0], 0x08, gz)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte{sfx}", arrays[split][1], 0x08, gz)
    (xtr, ytr), (xte, yte) = data.load_mnist(tmp_path)
    assert xtr.shape == (4, 28, 28, 1) and xte.shape == (2, 28, 28, 1)
    np.testing.assert_array_equal(xtr[..., 0], arrays["train"][0])
    np.testing.assert_array_equal(yte, arrays["t10k"][1])
    with pytest.raises(FileNotFoundError, match="train-images"):
        data.load_mnist(tmp_path / "missing")


def test_load_cifar10_directory(tmp_path, rng):
    raws = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        raws[name] = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"labels": [1, 2], b"data": raws[name]}, f, protocol=2)
    (xtr, ytr), (xte, yte) = data.load_cifar10(tmp_path)
    assert xtr.shape == (10, 32, 32, 3) and xte.shape == (2, 32, 32, 3)
    assert xtr[2, 0, 1, 2] == raws["data_batch_2"][0, 2048 + 1]     # blue plane, row 0, col 1
    np.testing.assert_array_equal(ytr, [1, 2] * 5)
