import math
import random

import numpy as np
import pytest

from atome_core.chapters import corpora as textstats


def test_entropy_of_uniform_and_degenerate():
    assert textstats.entropy_bits(np.ones(256)) == pytest.approx(8.0)
    assert textstats.entropy_bits([5, 0, 0]) == 0.0
    assert textstats.entropy_bits([1, 1, 1]) == pytest.approx(math.log2(3))
    with pytest.raises(ValueError):
        textstats.entropy_bits([0, 0])


def test_byte_histogram_counts_every_byte():
    h = textstats.byte_histogram(b"aab\x00")
    assert h.sum() == 4 and h[ord("a")] == 2 and h[0] == 1 and len(h) == 256


def test_compressors_rank_random_above_repetitive():
    rng = random.Random(0)
    noise = bytes(rng.randrange(256) for _ in range(20000))
    repetitive = b"to be or not to be " * 1000
    for name in textstats.COMPRESSORS:
        assert textstats.compressed_bits_per_byte(noise, name) > 7.9
        assert textstats.compressed_bits_per_byte(repetitive, name) < 0.5
    with pytest.raises(ValueError):
        textstats.compressed_bits_per_byte(b"", "zlib -9")


def test_ngram_order0_matches_smoothed_unigram_by_hand():
    train, val = b"aab", b"ab"
    alpha = 0.5
    p_a = (2 + alpha) / (3 + 256 * alpha)
    p_b = (1 + alpha) / (3 + 256 * alpha)
    expected = -(math.log2(p_a) + math.log2(p_b)) / 2
    assert textstats.ngram_cross_entropy_bits(train, val, 0, alpha) == pytest.approx(expected)


def test_ngram_context_helps_on_deterministic_text():
    text = b"abcdefgh" * 500
    h0 = textstats.ngram_cross_entropy_bits(text, text, 0)
    h1 = textstats.ngram_cross_entropy_bits(text, text, 1)
    assert h0 == pytest.approx(3.0, abs=0.05)  # 8 equiprobable symbols
    assert h1 < 0.1                             # the previous byte decides the next
    with pytest.raises(ValueError):
        textstats.ngram_cross_entropy_bits(b"ab", b"ab", 2)
