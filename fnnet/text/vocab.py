"""Vocabularies (character or word level) and text loaders.

A :class:`Vocab` maps tokens to integer ids and back. Special tokens (``"<eos>"``,
``"<pad>"``, ``"<unk>"``, ...) come first, so their ids do not change when the text
does; the ordinary tokens follow, sorted, so the same text always gives the same ids.

Imports: numpy and the standard library only.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
from typing import Iterable, Sequence

import numpy as np

__all__ = ["Vocab", "tokenize_words", "python_reference_text", "load_text", "text_fingerprint"]

_WORD_RE = re.compile(r"\w+|[^\w\s]")


def tokenize_words(text: str) -> list[str]:
    """Split ``text`` into words and single punctuation marks: ``"a, b." -> ["a", ",", "b", "."]``."""
    return _WORD_RE.findall(text)


@dataclasses.dataclass(frozen=True)
class Vocab:
    """A token <-> id table for ``level="char"`` or ``level="word"`` text.

    Attributes:
        tokens: all tokens by id; the special tokens come first.
        specials: the special tokens (a prefix of ``tokens``).
        level: ``"char"`` (a token is one character) or ``"word"`` (see :func:`tokenize_words`).
        unk: the special token that unknown tokens map to, or None (unknown tokens raise).
    """
    tokens: tuple[str, ...]
    specials: tuple[str, ...] = ()
    level: str = "char"
    unk: str | None = None

    def __post_init__(self):
        if self.level not in ("char", "word"):
            raise ValueError(f"Vocab: level must be 'char' or 'word', got {self.level!r}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("Vocab: tokens must be distinct")
        if tuple(self.tokens[:len(self.specials)]) != tuple(self.specials):
            raise ValueError("Vocab: the special tokens must come first in tokens")
        if self.unk is not None and self.unk not in self.specials:
            raise ValueError(f"Vocab: unk={self.unk!r} must be one of the special tokens {self.specials}")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def from_text(cls, text: str | Iterable[str], *, level: str = "char", specials: Sequence[str] = (),
                  unk: str | None = None, min_count: int = 1, max_size: int | None = None) -> "Vocab":
        """Build a vocabulary from ``text`` (a string, or an iterable of strings).

        Tokens seen fewer than ``min_count`` times are dropped (they map to ``unk`` if
        given); ``max_size`` keeps the most frequent ordinary tokens (ties by token).
        Ordinary tokens are sorted so the ids depend on the set of tokens only.
        """
        if level not in ("char", "word"):
            raise ValueError(f"Vocab.from_text: level must be 'char' or 'word', got {level!r}")
        if unk is not None and unk not in specials:
            specials = tuple(specials) + (unk,)
        texts = [text] if isinstance(text, str) else list(text)
        counts: collections.Counter = collections.Counter()
        for t in texts:
            counts.update(t if level == "char" else tokenize_words(t))
        for s in specials:
            counts.pop(s, None)
        kept = [t for t, c in counts.items() if c >= min_count]
        if max_size is not None:
            kept = sorted(kept, key=lambda t: (-counts[t], t))[:max_size]
        return cls(tuple(specials) + tuple(sorted(kept)), tuple(specials), level, unk)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def index(self, token: str) -> int:
        """The id of ``token`` (``unk``'s id for an unknown token if ``unk`` is set)."""
        i = self._index.get(token)
        if i is None:
            if self.unk is None:
                raise KeyError(f"Vocab: token {token!r} is not in the vocabulary (and no unk token is set)")
            return self._index[self.unk]
        return i

    def split(self, text: str) -> list[str]:
        """``text`` as a list of tokens (characters, or words and punctuation)."""
        return list(text) if self.level == "char" else tokenize_words(text)

    def encode(self, text: str, *, bos: str | None = None, eos: str | None = None) -> np.ndarray:
        """Token ids of ``text`` as int32, optionally framed by the special tokens ``bos``/``eos``."""
        ids = [self.index(t) for t in self.split(text)]
        if bos is not None:
            ids.insert(0, self._special_id(bos))
        if eos is not None:
            ids.append(self._special_id(eos))
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids, *, stop_at: str | None = None, skip_specials: bool = False) -> str:
        """Text of the ids; stop before the first ``stop_at`` token; drop specials if asked.

        Characters are joined with nothing between them, words with single spaces.
        """
        ids = np.asarray(ids).reshape(-1)
        stop = None if stop_at is None else self._special_id(stop_at)
        out = []
        for i in ids.tolist():
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"Vocab.decode: id {i} is out of range for a vocabulary of {len(self)} tokens")
            if i == stop:
                break
            if skip_specials and i < len(self.specials):
                continue
            out.append(self.tokens[i])
        return ("" if self.level == "char" else " ").join(out)

    def _special_id(self, token: str) -> int:
        if token not in self.specials:
            raise ValueError(f"Vocab: {token!r} is not a special token of this vocabulary {self.specials}")
        return self._index[token]


def python_reference_text() -> str:
    """The Python reference manual that ships with Python (``pydoc_data.topics``).

    The 79 topics joined by newlines, in the order of the ``topics`` dict (465,048
    characters of technical English on Python 3.11; the text depends on the Python
    minor version, see :func:`text_fingerprint`).
    """
    from pydoc_data.topics import topics
    return "\n".join(topics.values())


def python_reference_topics() -> list[str]:
    """The topics of the Python reference manual, one string each (dict order)."""
    from pydoc_data.topics import topics
    return list(topics.values())


__all__.append("python_reference_topics")


def load_text(path: str | os.PathLike | None = None, *, encoding: str = "utf-8") -> str:
    """The text of the file at ``path``; the Python reference manual when ``path`` is None."""
    if path is None:
        return python_reference_text()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_text: no text file at {os.fspath(path)!r}")
    with open(path, encoding=encoding) as f:
        return f.read()


def text_fingerprint(text: str) -> str:
    """The first 12 hex digits of the SHA-256 of ``text`` (to pin a corpus in results)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
