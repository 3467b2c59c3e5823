"""Modules: the protocol, the combinators, and one constructor per layer.

Imports: fnnet.functional, fnnet.init.
"""
from fnnet.nn.module import *  # noqa: F401,F403
from fnnet.nn.layers import *  # noqa: F401,F403
from fnnet.nn.conv import *  # noqa: F401,F403
from fnnet.nn.recurrent import *  # noqa: F401,F403
from fnnet.nn.normalization import *  # noqa: F401,F403
from fnnet.nn.cost import *  # noqa: F401,F403
from fnnet.nn.embedding import *  # noqa: F401,F403
from fnnet.nn.attention import *  # noqa: F401,F403
from fnnet.nn.transformer import *  # noqa: F401,F403
