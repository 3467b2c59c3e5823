"""Text tools: vocabularies, text loaders, sampling with temperature, top-k and top-p,
bits per character, greedy and beam-search decoding, BLEU and chrF.

Imports: fnnet.functional, fnnet.nn (and jax, numpy).
"""
from fnnet.text.vocab import *  # noqa: F401,F403
from fnnet.text.sampling import *  # noqa: F401,F403
from fnnet.text.bleu import *  # noqa: F401,F403
from fnnet.text.beam_search import *  # noqa: F401,F403
