"""Bundled data sets, loaded offline: sklearn's digits, breast cancer, iris and wine,
MNIST-1D generated procedurally (Greydanus & Kobak, "Scaling down deep learning
with MNIST-1D", ICML 2024), and the Tiny Shakespeare text and the ORL (AT&T) faces
shipped in ``bundled/`` (see its README for the checksums and credits).

Every loader returns NumPy arrays: features float32, labels int32. Values are the
raw ones of the source (digits 0..16, MNIST-1D real-valued); standardise or rescale
with :mod:`fnnet.data.splits`.

Imports: numpy, the standard library; scikit-learn and mnist1d lazily (both are
dependencies of fnnet, and neither touches the network here).
"""
from __future__ import annotations

import functools
import hashlib
import os

import numpy as np

__all__ = ["load_digits", "load_breast_cancer", "load_iris", "load_wine", "load_mnist1d",
           "MNIST1D_SHUFFLE_PERMUTATION_SEED", "load_tiny_shakespeare", "TINY_SHAKESPEARE_SHA256",
           "load_orl_faces", "ORL_FACES_SHA256"]

MNIST1D_SHUFFLE_PERMUTATION_SEED = 42


def _sklearn(name: str):
    import sklearn.datasets
    bunch = getattr(sklearn.datasets, name)()
    return bunch


def _digits_file():
    """The digits as ``sklearn.datasets.load_digits`` reads them (its bundled
    ``data/digits.csv.gz``: 64 pixels then the label per row), without importing
    scikit-learn, whose import costs seconds before the first step of ``make run``."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    if not os.path.exists(path):  # another layout: ask scikit-learn itself
        return _xy(_sklearn("load_digits"))
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(np.int32)


def _xy(bunch):
    return np.asarray(bunch.data, np.float32), np.asarray(bunch.target, np.int32)


def load_digits(images: bool = False):
    """The UCI 8x8 handwritten digits as bundled with scikit-learn (1,797 examples, 10 classes).

    Args:
      images: if True, return ``x`` as NHWC images ``(1797, 8, 8, 1)`` instead of
        flat ``(1797, 64)`` rows.

    Returns:
      ``(x, y)``: float32 pixel intensities 0..16 and int32 labels 0..9, in the file's order.
    """
    x, y = _digits_file()
    if images:
        x = x.reshape(-1, 8, 8, 1)
    return x, y


def load_breast_cancer():
    """Wisconsin diagnostic breast cancer: ``x (569, 30)`` float32, ``y (569,)`` int32
    (0 malignant, 1 benign)."""
    return _xy(_sklearn("load_breast_cancer"))


def load_iris():
    """Fisher's iris: ``x (150, 4)`` float32, ``y (150,)`` int32 in {0, 1, 2} (sorted by class)."""
    return _xy(_sklearn("load_iris"))


def load_wine():
    """UCI wine recognition: ``x (178, 13)`` float32, ``y (178,)`` int32 in {0, 1, 2}."""
    return _xy(_sklearn("load_wine"))


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays():
    """Generate MNIST-1D once per process, leaving NumPy's global RNG as it was.

    ``make_dataset`` reseeds the legacy global RNG (``np.random.seed(args.seed)``); the
    caller's state is saved and restored around it. Never calls ``get_dataset``, which
    tries to download and writes a pickle into the working directory.
    """
    from mnist1d.data import get_dataset_args, make_dataset
    state = np.random.get_state()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    arrays = (np.asarray(d["x"], np.float32), np.asarray(d["y"], np.int32),
              np.asarray(d["x_test"], np.float32), np.asarray(d["y_test"], np.int32))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def load_mnist1d(shuffle_seq: bool = False):
    """MNIST-1D with its default arguments (seed 42): 4,000 training and 1,000 test
    sequences of length 40, ten classes.

    Generated offline with ``mnist1d.data.make_dataset(get_dataset_args())`` (cached for
    the process; about 1 s the first time) and identical to the official
    ``mnist1d_data.pkl``. ``shuffle_seq=True`` gives the spatially shuffled variant of
    the paper's table: the 40 positions of every sequence permuted by the fixed
    permutation ``np.random.seed(42); np.random.permutation(40)``, computed here with
    ``np.random.RandomState(42)`` (the same permutation) so the global RNG is untouched.

    Returns:
      ``((x_train, y_train), (x_test, y_test))``: x float32 ``(n, 40)``, y int32 ``(n,)``.
    """
    x, y, x_test, y_test = (a.copy() for a in _mnist1d_arrays())
    if shuffle_seq:
        perm = np.random.RandomState(MNIST1D_SHUFFLE_PERMUTATION_SEED).permutation(x.shape[1])
        x, x_test = x[:, perm], x_test[:, perm]
    return (x, y), (x_test, y_test)


TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def load_tiny_shakespeare() -> str:
    """The Tiny Shakespeare corpus (1,115,394 characters, 65 distinct) of char-rnn and
    nanoGPT, from the copy bundled with fnnet; raises ``OSError`` if its sha256 is not
    :data:`TINY_SHAKESPEARE_SHA256`."""
    return _bundled_bytes("load_tiny_shakespeare", "tinyshakespeare.txt",
                          TINY_SHAKESPEARE_SHA256).decode("utf-8")


def _bundled_bytes(who: str, name: str, sha256: str) -> bytes:
    """The bytes of ``bundled/name``; ``OSError`` unless their sha256 is ``sha256``."""
    path = os.path.join(os.path.dirname(__file__), "bundled", name)
    with open(path, "rb") as f:
        raw = f.read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise OSError(f"{who}: {path} has sha256 {digest}, expected {sha256}: the bundled file is damaged")
    return raw


ORL_FACES_SHA256 = "13fddc05e2ba0acd422e31486726421cb705ada132599eaefc9075fa389953dc"


def load_orl_faces():
    """The ORL (AT&T) face database of the Olivetti Research Laboratory, Cambridge
    (Samaria & Harter 1994): 40 subjects, 10 grey-level images each, 112 x 92 pixels.

    Read from the copy bundled with fnnet (``bundled/orl_faces.npz``, its ``images``
    array ``uint8 (40, 10, 112, 92)``); raises ``OSError`` if its sha256 is not
    :data:`ORL_FACES_SHA256`. Please credit the Olivetti Research Laboratory when you
    use the images (``bundled/README.md``).

    Returns:
      ``(x, y)``: x float32 ``(400, 112, 92)``, the grey levels 0..255, subject-major
      (image ``i`` of subject ``sX`` at row ``10 (X - 1) + i - 1``, ``i`` and ``X``
      counted from 1 as in the original file names ``sX/i.pgm``); y int32 ``(400,)``,
      the subject ``X - 1`` in 0..39.
    """
    raw = _bundled_bytes("load_orl_faces", "orl_faces.npz", ORL_FACES_SHA256)
    import io
    with np.load(io.BytesIO(raw)) as archive:
        images = archive["images"]
    if images.shape != (40, 10, 112, 92) or images.dtype != np.uint8:
        raise OSError(f"load_orl_faces: expected images uint8 (40, 10, 112, 92) in bundled/orl_faces.npz, got "
                      f"{images.dtype} {images.shape}")
    x = images.reshape(400, 112, 92).astype(np.float32)
    y = np.repeat(np.arange(40, dtype=np.int32), 10)
    return x, y
