import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atome_core.formats import packing
from atome_core.formats.packing import CODECS, CodecError

CODEC_NAMES = list(CODECS)
trit_lists = st.lists(st.sampled_from([-1, 0, 1]), max_size=1300)
# lengths around every codec's group size (4, 5, 306) and its multiples
EDGE_LENGTHS = [0, 1, 2, 3, 4, 5, 6, 9, 10, 17, 18, 305, 306, 307, 611, 612, 613, 1000]


def roundtrip(codec, trits):
    t = np.asarray(trits, dtype=np.int8)
    data = codec.encode(t)
    out = codec.decode(data, t.size)
    assert out.dtype == np.int8 and out.shape == (t.size,)
    assert np.array_equal(out, t)
    if codec.encoded_size(t.size) is not None:
        assert len(data) == codec.encoded_size(t.size)
    return data


@pytest.mark.parametrize("name", CODEC_NAMES)
@settings(max_examples=60, deadline=None)
@given(trits=trit_lists)
def test_roundtrip_random(name, trits):
    roundtrip(CODECS[name], trits)


@pytest.mark.parametrize("name", CODEC_NAMES)
@pytest.mark.parametrize("value", [-1, 0, 1])
@pytest.mark.parametrize("n", EDGE_LENGTHS)
def test_roundtrip_constant(name, value, n):
    roundtrip(CODECS[name], np.full(n, value, np.int8))


@pytest.mark.parametrize("name", CODEC_NAMES)
@settings(max_examples=30, deadline=None)
@given(trits=trit_lists, chunk=st.integers(1, 700))
def test_streaming_decode_yields_the_trits_in_order(name, trits, chunk):
    """A consumer can take the trits chunk by chunk, e.g. a matrix-vector product row by row."""
    codec = CODECS[name]
    t = np.asarray(trits, np.int8)
    parts = list(codec.iter_decode(codec.encode(t), t.size, chunk_trits=chunk))
    got = np.concatenate(parts) if parts else np.zeros(0, np.int8)
    assert np.array_equal(got, t)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_streaming_matvec_equals_dense_matvec(name):
    rng = np.random.default_rng(1)
    w = rng.integers(-1, 2, size=(37, 53)).astype(np.int8)
    x = rng.standard_normal(53).astype(np.float32)
    codec = CODECS[name]
    data = codec.encode(w)
    y, row, acc = np.zeros(37, np.float32), 0, np.zeros(0, np.int8)
    for chunk in codec.iter_decode(data, w.size, chunk_trits=100):
        acc = np.concatenate([acc, chunk])
        while acc.size >= 53:  # a full row is available: consume it, drop it
            y[row] = acc[:53].astype(np.float32) @ x
            acc, row = acc[53:], row + 1
    assert row == 37
    want = np.array([w[r].astype(np.float32) @ x for r in range(37)])  # same summation order
    assert np.array_equal(y, want)


def test_two_bit_matches_atome01_codes():
    # 00 = 0, 01 = +1, 11 = -1, first trit in the lowest bits
    assert packing.TWO_BIT.encode([0, 1, -1, 0]) == bytes([0b00_11_01_00])
    assert packing.TWO_BIT.encode([-1]) == bytes([0b11])


def test_base3x5_matches_atome02_bytes():
    t = [1, 0, -1, 1, 1, -1, 1]
    want = [sum((v + 1) * 3 ** k for k, v in enumerate(t[:5])), (t[5] + 1) + 3 * (t[6] + 1)]
    assert packing.BASE3X5.encode(t) == bytes(want)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(0, 2000))
def test_group_bits_is_the_fewest_bits_that_hold_3_to_the_k(k):
    b = packing.group_bits(k)
    assert 3 ** k <= 2 ** b
    assert k == 0 or 3 ** k > 2 ** (b - 1)


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 700), groups=st.integers(1, 4), seed=st.integers(0, 2 ** 32 - 1))
def test_pack_groups_roundtrip_any_group_size(k, groups, seed):
    digits = np.random.default_rng(seed).integers(0, 3, size=(groups, k))
    digits[0] = 2  # the largest value, 3**k - 1
    bits = packing.pack_groups(digits)
    assert bits.shape == (groups, packing.group_bits(k))
    assert np.array_equal(packing.unpack_groups(bits, k), digits)
    value = sum(int(d) * 3 ** i for i, d in enumerate(digits[-1]))
    assert value == sum(int(b) << i for i, b in enumerate(bits[-1]))


def test_dense_default_is_below_1_5850_bits_per_trit():
    assert packing.DENSE.k == 306 and packing.group_bits(306) == 485
    n = 306 * 200
    t = np.random.default_rng(0).integers(-1, 2, n).astype(np.int8)
    bpt = packing.bits_per_trit("dense", t)
    assert math.log2(3) <= bpt <= 1.5850


def test_rans_approaches_the_empirical_entropy():
    rng = np.random.default_rng(2)
    for p in [(0.25, 0.5, 0.25), (0.33, 0.34, 0.33), (0.1, 0.8, 0.1), (0.4, 0.3, 0.3)]:
        t = (rng.choice(3, size=50_000, p=p) - 1).astype(np.int8)
        h = packing.empirical_entropy(t)
        bpt = packing.bits_per_trit("rans", t)
        assert bpt <= 1.01 * h, (p, bpt, h)


def test_rans_frequencies_are_valid():
    for counts in [(0, 0, 0), (0, 10, 0), (1, 1, 1), (10**6, 1, 3), (5, 0, 7)]:
        f = packing.rans_frequencies(counts)
        assert sum(f) == packing.RANS_M and min(f) >= packing.RANS_FMIN


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_wrong_length_is_rejected(name):
    codec = CODECS[name]
    data = codec.encode(np.ones(100, np.int8))
    for bad in (data[:-1], data + b"\x00"):
        with pytest.raises(CodecError):
            codec.decode(bad, 100)


def test_invalid_codes_are_rejected():
    with pytest.raises(CodecError, match="invalid code"):
        packing.TWO_BIT.decode(bytes([0b10]), 4)
    with pytest.raises(CodecError, match="padding"):
        packing.TWO_BIT.decode(bytes([0b01_00_00_00]), 3)
    with pytest.raises(CodecError, match="above 242"):
        packing.BASE3X5.decode(bytes([243]), 5)
    with pytest.raises(CodecError):
        packing.BASE3X5.decode(bytes([9]), 2)  # 2 trits hold values < 9
    with pytest.raises(CodecError, match=">= 3"):
        packing.DENSE.decode(b"\xff", 5)  # 5 trits in 8 bits: 255 >= 243
    with pytest.raises(CodecError, match="padding"):
        packing.DENSE.decode(bytes([0, 0b1000_0000]), 6)  # 6 trits use 10 bits of 16


def test_rans_rejects_damaged_streams():
    t = np.random.default_rng(3).integers(-1, 2, 500).astype(np.int8)
    data = bytearray(packing.RANS.encode(t))
    with pytest.raises(CodecError):
        packing.RANS.decode(bytes(data[:5]), 500)
    bad = bytearray(data)
    bad[0:2] = (0).to_bytes(2, "little")  # frequencies no longer sum to 2**14
    with pytest.raises(CodecError, match="frequencies"):
        packing.RANS.decode(bytes(bad), 500)
    with pytest.raises(CodecError):
        packing.RANS.decode(bytes(data), 501)
    with pytest.raises(CodecError, match="cannot come from"):
        packing.RANS.decode(bytes(data[:12]), 10**9)  # no huge work for a short stream


@pytest.mark.parametrize("name", CODEC_NAMES)
@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=200), n=st.integers(0, 2000))
def test_decoders_raise_codec_error_on_garbage(name, data, n):
    try:
        out = CODECS[name].decode(data, n)
    except CodecError:
        return
    assert out.shape == (n,) and set(np.unique(out)) <= {-1, 0, 1}


def test_bad_trit_values_are_refused():
    with pytest.raises(ValueError, match="-1, 0 or \\+1"):
        packing.DENSE.encode([0, 2])
    with pytest.raises(ValueError):
        packing.get_codec("zip")


def test_entropy():
    assert packing.empirical_entropy([]) == 0.0
    assert packing.empirical_entropy([1, 1, 1]) == 0.0
    assert packing.empirical_entropy([-1, 0, 1]) == pytest.approx(math.log2(3))
    assert packing.empirical_entropy([0, 0, 1, -1]) == pytest.approx(1.5)


def test_record_group_sizes_and_throughput():
    ks = packing.record_group_sizes(400)
    assert ks[:3] == [1, 3, 5] and 306 in ks and 41 in ks
    rates = [packing.group_bits_per_trit(k) for k in ks]
    assert rates == sorted(rates, reverse=True)
    t = np.random.default_rng(0).integers(-1, 2, 5000)
    speed = packing.measure_throughput(t, repeats=1)
    assert set(speed) == set(CODECS) and all(v["encode"] > 0 and v["decode"] > 0 for v in speed.values())
    assert speed["2bit"]["bits_per_trit"] == 2.0
