"""Tokenizers: character-level (with an explicit unknown token) and byte-level BPE.

Both share one small interface (`encode`, `decode`, `vocab_size`, `eot_id`, `save`) and are saved
as a single `tokenizer.json` in the run folder. The end-of-text token separates corpus records, so
a model learns where a record ends and generation can stop there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from genai_core.errors import CheckpointError, CorpusError

EOT = "<|endoftext|>"
UNK = "<|unk|>"
_CHAR_FORMAT = "genai-char-tokenizer/1"
_MAX_CODEPOINT = 0x110000


@dataclass
class Encoding:
    """Token ids of a text, plus what the tokenizer could not represent."""

    ids: list[int]
    unknown: list[str] = field(default_factory=list)
    """Distinct characters that were encoded as the unknown token (char tokenizer only)."""


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...
    @property
    def eot_id(self) -> int: ...
    def encode(self, text: str) -> Encoding: ...
    def encode_batch(self, texts: list[str]) -> list[np.ndarray]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def token_strings(self, ids: Iterable[int]) -> list[str]: ...
    def save(self, path: Path) -> None: ...


class CharTokenizer:
    """One id per character seen in the corpus, plus end-of-text and unknown tokens.

    Ids 0 and 1 are the special tokens; characters follow in code-point order, so the same corpus
    always gives the same ids. Encoding is vectorised through a code-point lookup table.
    """

    kind = "char"

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars: list[str] = sorted(set(chars))
        if any(len(c) != 1 for c in self.chars):
            raise CheckpointError("char tokenizer vocabulary must hold single characters")
        self.specials = [EOT, UNK]
        self._lut = np.full(_MAX_CODEPOINT, self.unk_id, dtype=np.int32)
        cps = np.fromiter((ord(c) for c in self.chars), dtype=np.int64, count=len(self.chars))
        self._lut[cps] = np.arange(len(self.specials), len(self.specials) + len(self.chars), dtype=np.int32)
        self._itos = self.specials + self.chars

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    @property
    def eot_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode_array(self, text: str) -> np.ndarray:
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        return self._lut[cps]

    def encode(self, text: str) -> Encoding:
        ids = self.encode_array(text)
        unknown: list[str] = []
        if (ids == self.unk_id).any():
            unknown = sorted({text[i] for i in np.flatnonzero(ids == self.unk_id)})
        return Encoding(ids.tolist(), unknown)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self.encode_array(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        itos = self._itos
        return "".join(itos[i] if 0 <= i < len(itos) else UNK for i in ids)

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        return [self.decode([i]) for i in ids]

    def save(self, path: Path) -> None:
        from genai_core.files import atomic_write_text

        atomic_write_text(path, json.dumps({"format": _CHAR_FORMAT, "chars": "".join(self.chars)}))


class BPETokenizer:
    """Byte-level BPE (GPT-2 style) from the `tokenizers` library: every byte is representable."""

    kind = "bpe"

    def __init__(self, tok: object) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        assert isinstance(tok, HFTokenizer)
        self._tok = tok
        eot = tok.token_to_id(EOT)
        if eot is None:
            raise CheckpointError(f"BPE tokenizer has no {EOT} token")
        self._eot = eot
        self._pieces: list[str] | None = None

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def eot_id(self) -> int:
        return self._eot

    def encode(self, text: str) -> Encoding:
        return Encoding(self._tok.encode(text).ids)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.int64) for e in self._tok.encode_batch(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        # Each token's text once per tokenizer: QA reads it for every token of every prompt it prepares or answers.
        if self._pieces is None:
            self._pieces = [self.decode([i]) for i in range(self.vocab_size)]
        n = len(self._pieces)
        return [self._pieces[i] if 0 <= i < n else self.decode([i]) for i in ids]

    def save(self, path: Path) -> None:
        from genai_core.files import atomic_write_text

        atomic_write_text(path, self._tok.to_str())


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 1024) -> CharTokenizer | BPETokenizer:
    """Build a tokenizer from an iterable of texts (one pass)."""
    if kind == "char":
        counts = np.zeros(_MAX_CODEPOINT, dtype=np.int64)
        for t in texts:
            counts += np.bincount(np.frombuffer(t.encode("utf-32-le", "surrogatepass"), dtype=np.uint32),
                                  minlength=_MAX_CODEPOINT)
        return char_tokenizer_from_counts(counts)
    if kind == "bpe":
        return BPETokenizer.train(texts, vocab_size)
    raise CorpusError(f"unknown tokenizer {kind!r}: choose char or bpe")


def char_tokenizer_from_counts(counts: np.ndarray) -> CharTokenizer:
    """A char tokenizer holding every code point with a non-zero count (surrogates excluded)."""
    cps = np.flatnonzero(counts)
    chars = [chr(c) for c in cps if not 0xD800 <= c <= 0xDFFF]
    if not chars:
        raise CorpusError("the corpus holds no characters")
    return CharTokenizer(chars)


def load_tokenizer(path: Path) -> CharTokenizer | BPETokenizer:
    """Load a tokenizer.json written by `save` (either kind). Plain JSON: nothing is unpickled."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no tokenizer file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"tokenizer file {path} is not valid JSON: {e}") from None
    if isinstance(data, dict) and data.get("format") == _CHAR_FORMAT:
        chars = data.get("chars")
        if not isinstance(chars, str) or not chars:
            raise CheckpointError(f"tokenizer file {path} has no characters")
        return CharTokenizer(chars)
    from tokenizers import Tokenizer as HFTokenizer

    try:
        return BPETokenizer(HFTokenizer.from_str(text))
    except Exception as e:  # the Rust side raises its own exception type
        raise CheckpointError(f"tokenizer file {path} is not a valid tokenizer: {e}") from None


class StreamDecoder:
    """Turns a growing list of ids into text pieces without splitting multi-byte characters.

    Byte-level BPE tokens can end mid-character; decoding the ids so far and holding back a
    trailing replacement character until the next token completes it gives clean streaming.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        if self.tokenizer.kind == "char":
            piece = self.tokenizer.decode([token_id])
            self.text += piece
            return piece
        full = self.tokenizer.decode(self.ids)
        if full.endswith("\ufffd"):
            return ""
        piece = full[len(self.text):]
        self.text = full
        return piece

    def flush(self) -> str:
        full = self.tokenizer.decode(self.ids)
        piece = full[len(self.text):]
        self.text = full
        return piece
