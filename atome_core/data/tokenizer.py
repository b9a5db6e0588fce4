"""Byte-level BPE (the Atom 3.4m recipe), trained with Hugging Face `tokenizers`.

Every byte sequence round-trips exactly, valid UTF-8 or not: text runs go through
the BPE model; a byte that is not part of valid UTF-8 is encoded as its own
byte-level base token (all 256 are in the vocabulary), and decoding maps tokens
back to bytes through the byte-level alphabet rather than through UTF-8.

Models with different tokenizers compare in bits per byte: summed nats over the
tokens of a text / the text's bytes / ln 2.
"""
import json
import math
from pathlib import Path

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>", "<|endoftext|>")


def byte_alphabet() -> dict[int, str]:
    """byte -> printable character, the GPT-2 byte-level convention the BPE works on."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


BYTE_TO_CHAR = byte_alphabet()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def _build(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    return tok, trainer


class BPETokenizer:
    """Byte-level BPE with exact byte round trips. `vocab_size` includes the specials."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.byte_token = [tokenizer.token_to_id(BYTE_TO_CHAR[b]) for b in range(256)]
        if any(t is None for t in self.byte_token):
            raise ValueError("tokenizer lacks some of the 256 byte-level base tokens")
        self.special_ids = {s: tokenizer.token_to_id(s) for s in SPECIAL_TOKENS}

    @classmethod
    def train(cls, texts, vocab_size: int = 4096) -> "BPETokenizer":
        minimum = 256 + len(SPECIAL_TOKENS)
        if vocab_size < minimum:
            raise ValueError(f"vocab_size must be at least {minimum} (256 bytes + specials)")
        tok, trainer = _build(vocab_size)
        tok.train_from_iterator(list(texts), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, data: bytes | str) -> list[int]:
        """Token ids of `data`; bytes that are not valid UTF-8 become byte tokens."""
        if isinstance(data, str):
            return self.tok.encode(data, add_special_tokens=False).ids
        ids, pos = [], 0
        while pos < len(data):
            try:
                text = data[pos:].decode("utf-8")
                ids += self.tok.encode(text, add_special_tokens=False).ids
                break
            except UnicodeDecodeError as e:
                if e.start:
                    ids += self.tok.encode(data[pos:pos + e.start].decode("utf-8"),
                                           add_special_tokens=False).ids
                ids.append(self.byte_token[data[pos + e.start]])
                pos += e.start + 1
        return ids

    def decode_bytes(self, ids) -> bytes:
        out = bytearray()
        for i in ids:
            token = self.tok.id_to_token(int(i))
            if token is None:
                raise ValueError(f"token id {i} is outside the vocabulary of {self.vocab_size}")
            if token in self.special_ids:
                out += token.encode("utf-8")
            else:
                out += bytes(CHAR_TO_BYTE[c] for c in token)
        return bytes(out)

    def decode(self, ids) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return self.tok.to_str()

    @classmethod
    def from_json(cls, text: str) -> "BPETokenizer":
        from tokenizers import Tokenizer
        return cls(Tokenizer.from_str(text))

    def save(self, path) -> None:
        from ..files import write_atomic
        write_atomic(Path(path), self.to_json().encode())

    @classmethod
    def load(cls, path) -> "BPETokenizer":
        return cls.from_json(Path(path).read_text())


class ByteTokenizer:
    """The identity tokenizer of the byte-level models (vocab 256), same interface."""
    vocab_size = 256

    def encode(self, data: bytes | str) -> list[int]:
        return list(data.encode("utf-8") if isinstance(data, str) else data)

    def decode_bytes(self, ids) -> bytes:
        return bytes(int(i) for i in ids)

    def decode(self, ids) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"kind": "bytes"})


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """Summed nats over a text's tokens -> bits per byte of that text."""
    if n_bytes <= 0:
        raise ValueError("bits per byte of an empty text")
    return total_nats / n_bytes / math.log(2)
