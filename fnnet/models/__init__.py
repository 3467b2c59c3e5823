"""The model zoo: classic CNNs (channels last), a GPT and an attention encoder-decoder,
built from :mod:`fnnet.nn`.

Every constructor returns an :class:`fnnet.nn.Module` (the GPT a :class:`GPT`, a Module
with key-value cache methods) whose ``apply`` gives logits.
Parameter counts and their sources are in each docstring and in ``docs/models.md``.

Imports: fnnet.nn, fnnet.functional, fnnet.init (and fnnet.text.sampling for the GPT's
``generate``).
"""
from fnnet.models.lenet import *  # noqa: F401,F403
from fnnet.models.resnet import *  # noqa: F401,F403
from fnnet.models.alexnet import *  # noqa: F401,F403
from fnnet.models.vgg import *  # noqa: F401,F403
from fnnet.models.googlenet import *  # noqa: F401,F403
from fnnet.models.mobilenet import *  # noqa: F401,F403
from fnnet.models.gpt import *  # noqa: F401,F403
from fnnet.models.seq2seq import *  # noqa: F401,F403
