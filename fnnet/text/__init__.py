"""Text tools: vocabularies, text loaders, sampling with temperature, top-k and top-p,
bits per character, greedy and beam-search decoding, BLEU and chrF; word-embedding
corpora, vector algebra and evaluation, debiasing; word2vec and GloVe training as the
submodules ``fnnet.text.word2vec`` and ``fnnet.text.glove`` (both define ``train`` and
``init_params``).

Imports: fnnet.functional, fnnet.nn (and jax, numpy).
"""
from fnnet.text.vocab import *  # noqa: F401,F403
from fnnet.text.sampling import *  # noqa: F401,F403
from fnnet.text.bleu import *  # noqa: F401,F403
from fnnet.text.beam_search import *  # noqa: F401,F403
from fnnet.text.corpus import *  # noqa: F401,F403
from fnnet.text.vectors import *  # noqa: F401,F403
from fnnet.text.debias import *  # noqa: F401,F403
from fnnet.text import word2vec, glove  # noqa: F401
