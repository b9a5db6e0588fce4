import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atome_core.data.tokenizer import (
    BYTE_TO_CHAR,
    SPECIAL_TOKENS,
    BPETokenizer,
    ByteTokenizer,
    bits_per_byte,
)

TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\n<|endoftext|>\nOnce upon a time there was a cat.\n") * 20


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer.train([TEXT], vocab_size=300)


def test_alphabet_matches_the_library():
    from tokenizers import pre_tokenizers
    assert set(BYTE_TO_CHAR.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert BYTE_TO_CHAR[ord(" ")] == "\u0120"


def test_vocab_specials_and_merges(tok):
    assert tok.vocab_size == 300
    assert all(tok.special_ids[s] is not None for s in SPECIAL_TOKENS)
    ids = tok.encode("To be, or not to be")
    assert len(ids) < len("To be, or not to be")          # merges learnt
    assert tok.encode("a<|endoftext|>b")[1] == tok.special_ids["<|endoftext|>"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_round_trip(data):
    t = _shared()
    assert t.decode_bytes(t.encode(data)) == data


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100))
def test_arbitrary_text_round_trip(text):
    t = _shared()
    assert t.decode(t.encode(text)) == text


_TOK = []


def _shared():
    if not _TOK:
        _TOK.append(BPETokenizer.train([TEXT], vocab_size=300))
    return _TOK[0]


def test_training_is_deterministic_and_serialisable(tok, tmp_path):
    again = BPETokenizer.train([TEXT], vocab_size=300)
    assert again.to_json() == tok.to_json()
    tok.save(tmp_path / "t.json")
    loaded = BPETokenizer.load(tmp_path / "t.json")
    assert loaded.encode(TEXT[:200]) == tok.encode(TEXT[:200])


def test_bad_inputs(tok):
    with pytest.raises(ValueError, match="at least"):
        BPETokenizer.train([TEXT], vocab_size=100)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode_bytes([10 ** 6])


def test_byte_tokenizer_and_bits_per_byte():
    b = ByteTokenizer()
    assert b.decode_bytes(b.encode(b"\x00\xff abc")) == b"\x00\xff abc"
    assert bits_per_byte(math.log(2) * 10, 10) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)
