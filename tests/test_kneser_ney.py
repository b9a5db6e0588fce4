"""Interpolated modified Kneser-Ney over bytes (atome_core.models.kneser_ney)."""
from collections import Counter
from fractions import Fraction as F

import numpy as np
import pytest

from atome_core.models import kneser_ney as kn


def reference_discounts(counts):
    """D1, D2, D3+ straight from the formulas (fallbacks as the module documents)."""
    n1, n2, n3, n4 = (sum(1 for c in counts if c == k) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 else 0.5
    formulas = [(1 - 2 * y * n2 / n1) if n1 else None, (2 - 3 * y * n3 / n2) if n2 else None,
                (3 - 4 * y * n4 / n3) if n3 else None]
    return [d if d is not None and d > 0 else y for d in formulas]


def reference_model(train: bytes, order: int, prune_above=None, min_count=2):
    """p(w | context) read directly off the formulas with dicts of n-grams, no arrays."""
    raw = [None] + [Counter(train[i:i + L] for i in range(len(train) - L + 1)) for L in range(1, order + 1)]

    def count(L, g):  # raw at the top, the number of distinct bytes seen before g below
        return raw[L][g] if L == order else len({h[:1] for h in raw[L + 1] if h[1:] == g})

    a = [None] + [{g: count(L, g) for g in raw[L]} for L in range(1, order + 1)]
    d = [None] + [reference_discounts(list(a[L].values())) for L in range(1, order + 1)]

    def disc(L, c):
        return 0.0 if c == 0 else d[L][min(c, 3) - 1]

    def kept(L, g):
        return prune_above is None or L <= prune_above or raw[L][g] >= min_count

    def p(h, w):
        L = len(h) + 1
        lower = 1 / 256 if L == 1 else p(h[1:], w)
        children = {g: c for g, c in a[L].items() if g[:-1] == h}
        total = sum(children.values())
        if total == 0:
            return lower
        terms = {g: max(c - disc(L, c), 0) / total for g, c in children.items()}
        gamma = (sum(disc(L, c) for c in children.values()) / total
                 + sum(t for g, t in terms.items() if not kept(L, g)))
        hw = h + bytes([w])
        return (terms[hw] if hw in terms and kept(L, hw) else 0.0) + gamma * lower

    def prob(context: bytes, w: int) -> float:
        return p(context[len(context) - (order - 1):] if order > 1 else b"", w)

    return prob


def markov_text(n: int, seed: int) -> bytes:
    """Bytes from a small random Markov chain over a few letters: repeats at every order."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcde ", np.uint8)
    table = rng.dirichlet(np.full(len(letters), 0.3), size=len(letters))
    out = [0]
    for _ in range(n - 1):
        out.append(rng.choice(len(letters), p=table[out[-1]]))
    return letters[out].tobytes()


def test_probabilities_sum_to_one_over_the_256_bytes_for_random_contexts():
    train = markov_text(400, seed=0)
    rng = np.random.default_rng(1)
    contexts = [b"", b"a", b"zz", bytes(rng.integers(0, 256, 5).tolist())]
    contexts += [train[i:i + k] for i, k in zip(rng.integers(0, 390, 8), rng.integers(1, 7, 8))]
    for order in (1, 2, 3, 5):
        for prune_above in (None, 1, 2):
            model = kn.fit(train, order, prune_above=prune_above)
            for context in contexts:
                total = sum(kn.prob(model, context, w) for w in range(256))
                assert total == pytest.approx(1.0, abs=2e-6), (order, prune_above, context)


def test_order_two_on_a_thirteen_byte_string_matches_the_hand_computed_estimate():
    model = kn.fit(b"aaaaabbbbabcb", 2)
    # Top level (raw bigram counts, 12 bigrams): aa 4, ab 2, bb 3, ba 1, bc 1, cb 1.
    # n1 = 3 (ba, bc, cb), n2 = 1, n3 = 1, n4 = 1; Y = 3 / (3 + 2*1) = 3/5
    # D1 = 1 - 2(3/5)(1/3) = 3/5, D2 = 2 - 3(3/5)(1/1) = 1/5, D3+ = 3 - 4(3/5)(1/1) = 3/5
    assert model.discounts[1] == pytest.approx([3 / 5, 1 / 5, 3 / 5])
    # Lower level (continuation counts: distinct bytes seen before): a {a, b} 2, b {a, b, c} 3,
    # c {b} 1. n1 = n2 = n3 = 1, n4 = 0; Y = 1/3; D1 = 1 - 2(1/3)(1/1) = 1/3,
    # D2 = 2 - 3(1/3)(1/1) = 1, D3+ = 3 - 4(1/3)(0/1) = 3.
    assert model.discounts[0] == pytest.approx([1 / 3, 1, 3])
    # Unigram level, A = 2 + 3 + 1 = 6: a (2 - 1)/6 = 1/6, b (3 - 3)/6 = 0, c (1 - 1/3)/6 = 1/9,
    # gamma = (1/3 + 1 + 3)/6 = 13/18 (1/6 + 1/9 + 13/18 = 1), times the uniform 1/256.
    p1 = {"a": F(1, 6) + F(13, 18) / 256, "b": F(13, 18) / 256, "c": F(1, 9) + F(13, 18) / 256,
          "z": F(13, 18) / 256}
    # Context a: aa 4, ab 2, A = 6: aa (4 - 3/5)/6 = 17/30, ab (2 - 1/5)/6 = 3/10,
    # gamma = (1/5 + 3/5)/6 = 2/15.
    # Context b: bb 3, ba 1, bc 1, A = 5: bb (3 - 3/5)/5 = 12/25, ba = bc = (1 - 3/5)/5 = 2/25,
    # gamma = (3/5 + 3/5 + 3/5)/5 = 9/25.
    # Context c: cb 1, A = 1: cb 1 - 3/5 = 2/5, gamma = 3/5.
    expected = {
        ("a", "a"): F(17, 30) + F(2, 15) * p1["a"],
        ("a", "b"): F(3, 10) + F(2, 15) * p1["b"],
        ("a", "c"): F(2, 15) * p1["c"],
        ("b", "b"): F(12, 25) + F(9, 25) * p1["b"],
        ("b", "a"): F(2, 25) + F(9, 25) * p1["a"],
        ("b", "z"): F(9, 25) * p1["z"],
        ("c", "b"): F(2, 5) + F(3, 5) * p1["b"],
        ("c", "c"): F(3, 5) * p1["c"],
        ("z", "a"): p1["a"],    # an unseen context backs off whole to the unigram level
        ("", "c"): p1["c"],     # no context at all: the unigram level
    }
    for (context, w), p in expected.items():
        assert kn.prob(model, context.encode(), ord(w)) == pytest.approx(float(p), rel=1e-6), (context, w)


def test_order_one_is_the_unigram_interpolated_with_the_uniform_by_hand():
    model = kn.fit(b"abbcccdddd", 1)
    # raw counts a 1, b 2, c 3, d 4 (N = 10): n1 = n2 = n3 = n4 = 1, Y = 1/(1 + 2) = 1/3
    # D1 = 1 - 2(1/3)(1/1) = 1/3, D2 = 2 - 3(1/3)(1/1) = 1, D3+ = 3 - 4(1/3)(1/1) = 5/3
    assert model.discounts[0] == pytest.approx([1 / 3, 1, 5 / 3])
    # gamma = (1/3 + 1 + 5/3 + 5/3)/10 = 7/15 (c and d both take D3+)
    gamma = F(7, 15)
    expected = {"a": F(2, 3) / 10, "b": F(1, 10), "c": F(4, 3) / 10, "d": F(7, 3) / 10, "z": F(0)}
    for w, term in expected.items():
        p = term + gamma / 256
        assert kn.prob(model, b"", ord(w)) == pytest.approx(float(p), rel=1e-6)
        assert kn.prob(model, b"dddd", ord(w)) == pytest.approx(float(p), rel=1e-6)  # no context used


def test_the_vectorised_model_matches_a_direct_reading_of_the_formulas():
    train = markov_text(300, seed=3)
    rng = np.random.default_rng(4)
    probes = [(train[i - k:i], int(w)) for i, k, w in zip(rng.integers(6, 300, 25), rng.integers(0, 6, 25),
                                                        rng.choice(list(b"abcde z"), 25))]
    probes += [(b"q" + train[10:13], ord("a")), (b"", ord("e"))]
    for order in (1, 2, 3, 4):
        for prune_above in (None, 2):
            model = kn.fit(train, order, prune_above=prune_above)
            reference = reference_model(train, order, prune_above=prune_above)
            for context, w in probes:
                assert kn.prob(model, context, w) == pytest.approx(reference(context, w), rel=1e-5), \
                    (order, prune_above, context, w)


def test_bits_per_byte_streams_each_byte_from_the_context_it_has():
    train, val = markov_text(500, seed=5), markov_text(60, seed=6)
    model = kn.fit(train, 4)
    by_hand = -np.mean([np.log2(kn.prob(model, val[max(0, t - 3):t], val[t])) for t in range(len(val))])
    assert kn.bits_per_byte(model, val) == pytest.approx(by_hand, rel=1e-12)
    # the first byte is scored from no context at all: the unigram level
    assert kn.bits_per_byte(model, val[:1]) == pytest.approx(-np.log2(kn.prob(model, b"", val[0])))
    # and a numpy byte array reads as the same bytes
    assert kn.bits_per_byte(model, np.frombuffer(val, np.uint8)) == kn.bits_per_byte(model, val)


def test_one_byte_of_context_predicts_a_first_order_markov_text_better_than_none():
    text = markov_text(3500, seed=7)
    train, val = text[:3000], text[3000:]
    bits = [kn.bits_per_byte(kn.fit(train, order), val) for order in (1, 2, 3)]
    assert bits[1] < bits[0] - 0.1 and bits[2] < bits[1] + 0.05


def test_unseen_contexts_and_bytes_back_off_cleanly():
    model = kn.fit(b"the cat sat on the mat. the cat ate.", 4)
    # a context never seen backs off to its longest seen suffix
    assert kn.prob(model, b"xyzt", ord("h")) == pytest.approx(kn.prob(model, b"t", ord("h")))
    assert kn.prob(model, b"\xff\xfe\xfd", ord("a")) == pytest.approx(kn.prob(model, b"", ord("a")))
    # a byte never seen still gets probability, from the uniform base
    assert 0 < kn.prob(model, b"the", 0xFF) < 1 / 256
    assert np.isfinite(kn.bits_per_byte(model, bytes(range(256))))


def test_empty_or_short_inputs_give_a_clear_value_error():
    with pytest.raises(ValueError, match="order"):
        kn.fit(b"abc", 0)
    with pytest.raises(ValueError, match="needs at least 5"):
        kn.fit(b"abcd", 5)
    with pytest.raises(ValueError, match="needs at least 1"):
        kn.fit(b"", 1)
    model = kn.fit(b"abcd", 2)
    with pytest.raises(ValueError, match="empty"):
        kn.bits_per_byte(model, b"")
    with pytest.raises(ValueError, match="0..255"):
        kn.prob(model, b"a", 256)
    with pytest.raises(TypeError, match="encode"):
        kn.fit("abcd", 2)


def test_the_stored_form_round_trips_to_identical_bits_per_byte():
    train, val = markov_text(2000, seed=8), markov_text(300, seed=9)
    for prune_above in (None, 2):
        model = kn.fit(train, 5, prune_above=prune_above)
        blob = kn.to_bytes(model)
        back = kn.from_bytes(blob)
        assert kn.deployed_bytes(model) == len(blob)
        assert kn.bits_per_byte(back, val) == kn.bits_per_byte(model, val)
        assert np.array_equal(back.discounts, model.discounts)
        assert all(np.array_equal(x, y) for x, y in zip(back.keys + back.terms + back.gammas,
                                                       model.keys + model.terms + model.gammas))
        assert kn.to_bytes(back) == blob
    with pytest.raises(ValueError, match="magic"):
        kn.from_bytes(b"NOTAMODEL" + blob[9:])
    with pytest.raises(ValueError, match="truncated"):
        kn.from_bytes(blob[:-3])
    with pytest.raises(ValueError, match="after"):
        kn.from_bytes(blob + b"\0")


def test_the_stored_form_holds_each_node_once_with_its_byte_term_and_gamma():
    model = kn.fit(b"abab", 2)   # level 1: a, b; level 2: ab, ba
    # header 8 + 4, two level headers (3 doubles + uint32) 2 * 28; level 1: 1 child count (2 B),
    # 2 bytes, 2 terms (8 B), the root's gamma (4 B); level 2: 2 child counts (4 B), 2 bytes,
    # 2 terms (8 B), 2 gammas (8 B)
    assert kn.deployed_bytes(model) == 12 + 56 + (2 + 2 + 8 + 4) + (4 + 2 + 8 + 8)


def test_pruning_drops_rare_long_ngrams_and_shrinks_the_stored_form():
    text = markov_text(6000, seed=10)
    train, val = text[:5000], text[5000:]
    full, pruned = kn.fit(train, 5), kn.fit(train, 5, prune_above=2)
    assert [len(k) for k in pruned.keys[:2]] == [len(k) for k in full.keys[:2]]
    assert all(len(p) < len(f) for p, f in zip(pruned.keys[2:], full.keys[2:]))
    assert kn.deployed_bytes(pruned) < 0.8 * kn.deployed_bytes(full)
    # cheaper, and not much worse (a first-order chain: the long contexts were mostly noise);
    # the dropped mass went to the shorter contexts
    assert kn.bits_per_byte(pruned, val) != kn.bits_per_byte(full, val)
    assert abs(kn.bits_per_byte(pruned, val) - kn.bits_per_byte(full, val)) < 0.2
    # a higher min_count drops more
    harder = kn.fit(train, 5, prune_above=2, min_count=4)
    assert kn.deployed_bytes(harder) < kn.deployed_bytes(pruned)


def test_discounts_fall_back_to_y_where_a_formula_divides_by_zero_or_is_not_positive():
    # counts 1, 1, 2: n3 = 0; Y = 2/(2 + 2) = 1/2, D1 = 1 - 2(1/2)(1/2) = 1/2, D2 = 2 - 3(1/2)(0/1)
    # = 2, D3+ divides by n3 = 0: Y
    assert kn.discounts([1, 1, 2]) == pytest.approx([1 / 2, 2, 1 / 2])
    # counts 1, 2, 3, 3, 3, 3: Y = 1/3, D2 = 2 - 3(1/3)(4/1) = -2 is not positive: Y;
    # D3+ = 3 - 4(1/3)(0/4) = 3
    assert kn.discounts([1, 2, 3, 3, 3, 3]) == pytest.approx([1 / 3, 1 / 3, 3])
    # only counts >= 5 (n1 = 0): Y = 1/2 and every discount takes it
    assert kn.discounts([5, 7]) == pytest.approx([1 / 2, 1 / 2, 1 / 2])
    assert kn.discounts([1, 2, 2, 3, 3, 3, 4, 9]) == pytest.approx(reference_discounts([1, 2, 2, 3, 3, 3, 4, 9]))


def test_every_byte_keeps_a_positive_probability_on_a_text_from_another_source():
    # the validation text comes from another Markov chain: transitions never seen in training
    model = kn.fit(markov_text(5000, seed=10), 5)
    assert np.isfinite(kn.bits_per_byte(model, markov_text(1000, seed=11)))


def test_reference_points_give_one_row_per_order_and_pruning_that_applies():
    text = markov_text(3000, seed=12)
    rows = kn.reference_points(text[:2500], text[2500:], orders=(2, 3), prunes=(None, 2))
    assert [(r["order"], r["prune_above"]) for r in rows] == [(2, None), (3, None), (3, 2)]
    full = kn.fit(text[:2500], 3)
    assert rows[1]["bits_per_byte"] == kn.bits_per_byte(full, text[2500:])
    assert rows[1]["deployed_bytes"] == kn.deployed_bytes(full) > rows[2]["deployed_bytes"]
