"""Data sets and the plumbing around them.

- :mod:`fnnet.data.datasets`: bundled sets (digits, breast cancer, iris, wine, MNIST-1D).
- :mod:`fnnet.data.files`: readers for MNIST IDX files and CIFAR-10 python batches.
- :mod:`fnnet.data.splits`: train/dev/test splits from a key, standardisation,
  one-hot, mini-batches.
- :mod:`fnnet.data.synthetic_audio`: trigger-word clips (background, trigger and
  distractor words synthesised in NumPy, per-step labels).
- :mod:`fnnet.data.synthetic_scenes`: coloured shapes on a canvas with captions from a
  small grammar.

Imports: numpy, jax (scikit-learn and mnist1d lazily, for the bundled sets).
"""
from fnnet.data.datasets import *  # noqa: F401,F403
from fnnet.data.files import *  # noqa: F401,F403
from fnnet.data.splits import *  # noqa: F401,F403
from fnnet.data import sequences  # noqa: F401
from fnnet.data import augment  # noqa: F401
from fnnet.data.synthetic_audio import TriggerClips, make_trigger_clips, label_steps_after  # noqa: F401
from fnnet.data.synthetic_scenes import Scenes, make_scenes, encode_captions, decode_caption  # noqa: F401
