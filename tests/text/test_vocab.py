"""Vocab, tokenisation and the text loaders, against hand-written expectations."""
import numpy as np
import pytest

from fnnet import text


def test_char_vocab_round_trip_and_ids():
    v = text.Vocab.from_text("hello world", specials=("<eos>",))
    assert v.tokens == ("<eos>", " ", "d", "e", "h", "l", "o", "r", "w")
    ids = v.encode("hold", eos="<eos>")
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [4, 6, 5, 2, 0])
    assert v.decode(ids, stop_at="<eos>") == "hold"
    assert v.decode(ids, skip_specials=True) == "hold"
    assert v.decode(ids) == "hold<eos>"


def test_unknown_tokens():
    v = text.Vocab.from_text("abc")
    with pytest.raises(KeyError, match="'z'"):
        v.encode("az")
    u = text.Vocab.from_text("abc", unk="<unk>")
    np.testing.assert_array_equal(u.encode("az"), [u.index("a"), u.index("<unk>")])
    with pytest.raises(ValueError, match="special"):
        u.encode("a", eos="<eos>")
    with pytest.raises(ValueError, match="out of range"):
        u.decode([99])


def test_word_vocab_min_count_and_max_size():
    s = "the cat sat. the dog sat, the end"
    assert text.tokenize_words("a, b.") == ["a", ",", "b", "."]
    v = text.Vocab.from_text(s, level="word", min_count=2, unk="<unk>")
    assert v.tokens == ("<unk>", "sat", "the")
    assert v.decode(v.encode("the cat sat")) == "the <unk> sat"
    w = text.Vocab.from_text(s, level="word", max_size=2, specials=("<pad>",))
    assert w.tokens == ("<pad>", "sat", "the")   # the (3), sat (2): the two most frequent


def test_python_reference_text_and_file(tmp_path):
    from pydoc_data.topics import topics
    ref = text.python_reference_text()
    assert ref == "\n".join(topics.values()) and len(ref) > 100_000
    assert text.load_text() == ref
    p = tmp_path / "t.txt"
    p.write_text("héllo\n", encoding="utf-8")
    assert text.load_text(p) == "héllo\n"
    with pytest.raises(FileNotFoundError):
        text.load_text(tmp_path / "missing.txt")
    assert len(text.text_fingerprint(ref)) == 12 and text.text_fingerprint("a") != text.text_fingerprint("b")
