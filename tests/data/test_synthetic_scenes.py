"""Synthetic captioning scenes: each caption says what is drawn where (colours read
back from the pixels, relations from the positions), determinism by seed, encoding."""
import numpy as np
import pytest

from fnnet.data.synthetic_scenes import COLORS, RELATIONS, VOCAB, decode_caption, encode_captions, make_scenes


def test_scenes_captions_match_the_drawn_objects():
    scenes = make_scenes(7, 40)
    again = make_scenes(7, 40)
    np.testing.assert_array_equal(scenes.images, again.images)
    assert scenes.captions == again.captions
    for image, caption, refs, objects in zip(*scenes):
        assert caption in refs and len(refs) == 2
        (ca, sa, ra, xa), (cb, sb, rb, xb) = objects
        assert (ca, sa) != (cb, sb)
        # each object's colour is at its centre pixel
        for c, r, x in ((ca, ra, xa), (cb, rb, xb)):
            np.testing.assert_allclose(image[int(round(r)), int(round(x))], COLORS[c], atol=1e-6)
        # the relation from the positions, independently: the larger displacement wins
        relation = ("above" if rb > ra else "below") if abs(rb - ra) > abs(xb - xa) else \
            ("to the left of" if xb > xa else "to the right of")
        assert refs[0] == ["a", ca, sa, *relation.split(), "a", cb, sb]
        assert refs[1] == ["a", cb, sb, *RELATIONS[relation].split(), "a", ca, sa]
    ids = encode_captions(scenes.captions, 11)
    assert [decode_caption(row) for row in ids] == scenes.captions
    assert ids.max() < len(VOCAB) and set(ids[:, -1].tolist()) <= {0, 2}   # 10 words at most, then <end>
    with pytest.raises(KeyError, match="outside VOCAB"):
        encode_captions([["a", "purple", "circle"]], 11)
    with pytest.raises(ValueError, match="more than max_len - 1 = 3"):
        encode_captions([scenes.captions[0]], 4)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="expected image_size as an int >= 16, got 8"):
        make_scenes(0, 1, image_size=8)
    with pytest.raises(ValueError, match=r"expected radius \(low, high\) with 1 <= low <= high <= image_size / 6 = 4"):
        make_scenes(0, 1, radius=(3.0, 5.0))
