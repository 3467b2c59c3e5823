"""The model zoo: classic CNNs (channels last), a GPT, an attention encoder-decoder, a
soft-attention image captioner and the sentence classifiers (Emojify v1/v2, Kim's text
CNN), built from :mod:`fnnet.nn`.

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
from fnnet.models.captioning import *  # noqa: F401,F403
from fnnet.models.text_classifiers import *  # noqa: F401,F403
