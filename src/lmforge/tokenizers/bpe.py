"""Byte-level BPE: any string round-trips, with no unknown token.

Text is read as UTF-8 bytes, each byte is a token to begin with, and training
(Hugging Face `tokenizers`, in Rust) learns merges of frequent adjacent pairs
until the vocabulary has `vocab_size` tokens. The pipeline, GPT-2's:

    text ─► pieces (PATTERN: words with their leading space, numbers, punctuation runs, whitespace)
         ─► each piece's UTF-8 bytes ─► merges, lowest rank first ─► ids

Encoding runs through two caches, because corpora repeat the same words:

- a word cache: the text is cut at every space (`str.split`, far faster than the
  pattern), and each space-led word (" Hello,") is looked up whole. A word whose
  first and last characters are not whitespace is tokenized alike wherever it
  stands: no piece of the pattern reaches across the space before it or the
  space after it. So its ids are worked out once, and every later occurrence is
  a lookup: short words in a numpy table, all at once (`word_table.py`), the
  rest in a dict. New words are worked out together, each distinct one once
  however often the text repeats it. The few other stretches (around double
  spaces or a space beside a newline) take the piece path below.
- a piece cache: each distinct piece is merged once (by Hugging Face's BPE model).
  ASCII text is split by an equivalent pattern in the standard library's faster
  engine.

Long texts are cut at safe points (`cuts.py`) and encoded on every core.

The whole Hugging Face pipeline is stored inside lmforge's JSON, so a
`tokenizer.json` stays one self-contained file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import numpy as np
import regex

from lmforge.errors import LmforgeError
from lmforge.tokenizers.base import SPECIAL_TEXT, Tokenizer, as_texts, check_specials, check_text, id_dtype
from lmforge.tokenizers.cuts import last_safe, next_safe, split_text
from lmforge.tokenizers.parallel import can_fork_workers, cores, process_pool
from lmforge.tokenizers.word_table import Words, WordTable

# GPT-2's pre-tokenizer, also Hugging Face's ByteLevel(use_regex=True) and tiktoken's "gpt2" pattern
PATTERN = regex.compile(r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
# the same pieces for ASCII text (letters, digits and whitespace spelled out), in the standard library's
# engine, which finds them about twice as fast
ASCII_PATTERN = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII)
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
DEFAULT_SPECIALS = {"eos": SPECIAL_TEXT["eos"]}
MAX_CACHE = 1 << 19  # distinct pieces remembered (~60 MB); the cache is emptied when it would grow past this
PARALLEL_CHUNK = 1 << 20  # characters per part when a long text is encoded on several cores
PROCESS_MIN = 1 << 22  # characters from which forking worker processes pays off
_MISSING = -(1 << 62)  # what a cache lookup gives for a piece not seen before
_IRREGULAR = -(1 << 61)  # the word cache's mark for a word that starts or ends with whitespace (or is empty)
_EMPTY_CODE = -(1 << 60)  # a code that expands to no ids (Sequences.expand)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from each byte to a printable character, so a token's bytes can be a JSON string."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)  # the unprintable bytes get characters past Latin-1
            extra += 1
    return chars



_DECODER = {c: b for b, c in bytes_to_unicode().items()}
_TO_UNICODE = str.maketrans(bytes_to_unicode())  # applied to bytes read as Latin-1: byte b → its character


def unicode_to_bytes(token: str) -> bytes:
    """The bytes a vocabulary entry spells (the inverse of `bytes_to_unicode`)."""
    return bytes(_DECODER[c] for c in token)


def split_pieces(text: str) -> list[str]:
    """GPT-2's pieces of `text`. ASCII stretches (most of most corpora) take the faster ASCII pattern; each run
    of other characters, widened to the safe cut points around it (`cuts.py`), takes the full pattern."""
    if text.isascii():
        return ASCII_PATTERN.findall(text)
    pieces: list[str] = []
    pos = 0  # everything before pos is split
    for run in _NON_ASCII.finditer(text):
        if run.start() < pos:
            continue  # already inside the last stretch given to the full pattern
        lo = last_safe(text, pos, run.start()) or pos
        hi = next_safe(text, run.end())
        pieces += ASCII_PATTERN.findall(text[pos:lo])  # a slice of ASCII is stored one byte a character: faster
        pieces += PATTERN.findall(text, lo, hi)
        pos = hi
    pieces += ASCII_PATTERN.findall(text[pos:])
    return pieces


def _pick(items: list[str], rows: np.ndarray) -> Sequence[str]:
    """items[i] for each i in rows, gathered in C (itemgetter) rather than by a Python loop."""
    return [items[i] for i in rows.tolist()] if len(rows) < 2 else itemgetter(*rows.tolist())(items)


def _room(array: np.ndarray, size: int) -> np.ndarray:
    """`array`, or a copy twice as large (or more) when it holds fewer than `size` entries."""
    if size <= len(array):
        return array
    grown = np.empty(max(size, 2 * len(array)), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class Sequences:
    """Multi-token id sequences, end to end in one array, that cache codes -(k+1) point to.

    A cache code is a token id (≥ 0), -(k+1) for sequence k, or _EMPTY_CODE for nothing.
    Expanding codes to ids is a few numpy gathers, not a Python loop over the text.
    """

    def __init__(self):
        # the arrays grow by doubling: a text encoded document by document adds a few sequences at a time, and
        # copying everything stored at each addition made that quadratic
        self._flat = np.empty(1024, dtype=np.int64)  # the sequences, end to end
        self._starts = np.empty(256, dtype=np.int64)  # where sequence k begins in flat
        self._lengths = np.empty(256, dtype=np.int64)
        self._n_flat = self._n_seq = 0

    @property
    def flat(self) -> np.ndarray:
        return self._flat[: self._n_flat]

    @property
    def starts(self) -> np.ndarray:
        return self._starts[: self._n_seq]

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths[: self._n_seq]

    def codes(self, sequences: list[list[int]]) -> np.ndarray:
        """The code of each sequence: its id when it has one, else -(k+1) for a newly stored k."""
        counts = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        return self.add(np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=int(counts.sum())), counts)

    def add(self, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """`codes` for sequences given end to end: `ids`, of which the first counts[0] are sequence 0, and so on."""
        first = np.cumsum(counts) - counts
        codes = ids[first]  # every sequence has at least one id
        multi = counts > 1
        lengths = counts[multi]
        new_ids = ids[np.repeat(multi, counts)]
        k, at = self._n_seq, self._n_flat
        codes[multi] = -(k + np.arange(1, len(lengths) + 1))
        self._starts, self._lengths = (_room(a, k + len(lengths)) for a in (self._starts, self._lengths))
        self._flat = _room(self._flat, at + len(new_ids))
        self._starts[k: k + len(lengths)] = at + np.cumsum(lengths) - lengths
        self._lengths[k: k + len(lengths)] = lengths
        self._flat[at: at + len(new_ids)] = new_ids
        self._n_seq, self._n_flat = k + len(lengths), at + len(new_ids)
        return codes

    def token_counts(self, codes: np.ndarray) -> np.ndarray:
        """How many ids each code stands for."""
        n = np.ones(len(codes), dtype=np.int64)
        n[codes == _EMPTY_CODE] = 0
        is_multi = (codes < 0) & (codes != _EMPTY_CODE)
        n[is_multi] = self.lengths[-codes[is_multi] - 1]
        return n

    def expand(self, codes: np.ndarray) -> np.ndarray:
        """The ids the codes stand for, in order."""
        is_multi = codes < 0
        if not is_multi.any():
            return codes
        n = self.token_counts(codes)
        out = np.repeat(codes, n)  # single ids are already right; an empty code repeats 0 times
        is_multi &= codes != _EMPTY_CODE
        k = -codes[is_multi] - 1  # which sequence each multi-token code is
        m = self.lengths[k]
        offset = np.arange(m.sum()) - np.repeat(np.cumsum(m) - m, m)  # position inside each sequence
        out[np.repeat((np.cumsum(n) - n)[is_multi], m) + offset] = self.flat[np.repeat(self.starts[k], m) + offset]
        return out


class BpeTokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, hf_pipeline: dict[str, Any], specials: dict[str, str] | None = None):
        from tokenizers import Tokenizer as HFTokenizer

        self.hf_pipeline = hf_pipeline
        self.hf = HFTokenizer.from_str(json.dumps(hf_pipeline))
        self.hf.encode_special_tokens = True  # "<|endoftext|>" inside a text is text, never the special id
        self.special_text = check_specials(DEFAULT_SPECIALS if specials is None else specials)
        self._specials = {}
        for role, text in self.special_text.items():
            token_id = self.hf.token_to_id(text)
            if token_id is None:
                raise LmforgeError(f"special token {text!r} ({role}) is not in this BPE vocabulary; retrain the tokenizer")
            self._specials[role] = token_id
        n = self.hf.get_vocab_size(with_added_tokens=True)
        table = [b""] * n
        for token, token_id in self.hf.get_vocab(with_added_tokens=True).items():
            table[token_id] = unicode_to_bytes(token) if all(c in _DECODER for c in token) else token.encode("utf-8")
        for text, token_id in zip(self.special_text.values(), self._specials.values()):
            table[token_id] = text.encode("utf-8")
        self._bytes = table
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._clear_piece_cache()
        self._clear_word_cache()

    def _clear_piece_cache(self) -> None:  # the word cache keeps its own sequences, so it stays valid
        self._cache: dict[str, int] = {}  # piece → its id, or -(k+1) for the k-th multi-token sequence
        self._multi = Sequences()

    def _clear_word_cache(self) -> None:
        self._words: dict[str, int] = {}  # word (after a space) → its id, -(k+1) for a sequence, or _IRREGULAR
        self._word_multi = Sequences()
        self._table = WordTable()  # the same codes for short words, looked up in numpy (word_table.py)

    # ------------------------------------------------------------------ training

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, specials: dict[str, str] | None = None,
              min_frequency: int = 2) -> BpeTokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        specials = DEFAULT_SPECIALS if specials is None else check_specials(specials)
        least = 256 + len(specials) + 1
        if vocab_size < least:
            raise LmforgeError(f"--vocab-size {vocab_size} is too small for byte-level BPE: it starts from 256 byte "
                               f"tokens and {len(specials)} special(s); use at least {least}")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(specials.values()),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        hf.train_from_iterator((check_text(t) for t in as_texts(texts)), trainer)
        return cls(json.loads(hf.to_str()), specials)

    # ------------------------------------------------------------------ encoding

    @property
    def vocab_size(self) -> int:
        return len(self._bytes)

    def _ids_of(self, pieces: list[str]) -> np.ndarray:
        """The ids of the pieces, in order (int64)."""
        codes = self._piece_codes(pieces)  # first: it may empty the cache and start a new self._multi
        return self._multi.expand(codes)

    def _piece_codes(self, pieces: list[str]) -> np.ndarray:
        """Each piece's cache code: its id when it is one token (most are), or -(k+1) for the k-th multi-token
        sequence. Pieces not seen before are merged by Hugging Face's BPE model."""
        return self._cached_codes("_cache", pieces, self._learn_pieces, self._clear_piece_cache)

    def _learn_pieces(self, pieces: list[str]) -> None:
        tokenize = self.hf.model.tokenize  # the BPE model alone: merges one piece, no pipeline around it
        merged = [[t.id for t in tokenize(piece.encode("utf-8").decode("latin-1").translate(_TO_UNICODE))]
                  for piece in pieces]
        self._cache.update(zip(pieces, self._multi.codes(merged).tolist()))

    def _cached_codes(self, cache_name: str, keys: list[str], learn: Callable[[list[str]], None],
                      clear: Callable[[], None]) -> np.ndarray:
        """The codes of `keys` in the cache `self.<cache_name>`; `learn` caches the ones not seen before. A cache
        that would grow past MAX_CACHE is emptied (by `clear`) first."""
        cache = getattr(self, cache_name)
        codes = np.fromiter(map(cache.get, keys, repeat(_MISSING)), dtype=np.int64, count=len(keys))
        unseen = np.flatnonzero(codes == _MISSING)
        if len(unseen):
            unseen_keys = _pick(keys, unseen)
            missing = list(set(unseen_keys))
            if cache and len(cache) + len(missing) > MAX_CACHE:
                clear()
                return self._cached_codes(cache_name, keys, learn, clear)
            learn(missing)
            codes[unseen] = np.fromiter(map(cache.__getitem__, unseen_keys), np.int64, len(unseen))
        return codes

    def _encode_text(self, text: str) -> np.ndarray:
        """The ids of `text` (int64), word by word through the word caches (see the module's docstring)."""
        if len(text) > PARALLEL_CHUNK:  # in parts: the first fill the caches, so most words of the rest hit them
            return np.concatenate([self._encode_text(part) for part in split_text(text, PARALLEL_CHUNK)])
        return self._encode_texts([text])[0]

    def _encode_texts(self, texts: list[str]) -> list[np.ndarray]:
        """The ids of each text (int64), all in one pass: their words are looked up together, as one text's are,
        but no word or piece spans two texts."""
        raws = [text.encode("utf-8") for text in texts]  # raises UnicodeEncodeError on a lone surrogate (see encode)
        sizes = np.fromiter(map(len, raws), np.int64, len(raws))
        raw = b"".join(raws)
        words = Words.of(raw, (np.cumsum(sizes) - sizes)[1:])  # words[i] stands after a space, except the firsts
        codes = self._table.lookup(words, _MISSING)  # most words, in a few numpy gathers
        codes[words.firsts] = _IRREGULAR  # no space before them
        rest = np.flatnonzero(codes == _MISSING)
        if len(rest):  # the others through the dict, which learns the new ones: each distinct word once
            multi = self._word_multi
            short = rest[words.eligible[rest]]
            distinct, holder = words.distinct(short)
            look = np.concatenate([rest[~words.eligible[rest]], distinct])  # the rows to look up, once each
            if len(look) > len(codes) // 8:  # a cold cache: splitting the whole text is cheaper than many slices
                # the same words: a space is one byte in UTF-8, and never inside a character
                keys = _pick(list(chain.from_iterable(text.split(" ") for text in texts)), look)
            else:
                spans = zip(words.starts[look].tolist(), words.ends[look].tolist())
                keys = [raw[a:b].decode("utf-8") for a, b in spans]
            codes[look] = self._cached_codes("_words", keys, self._learn_words, self._clear_word_cache)
            if self._word_multi is not multi:  # the caches were emptied to make room: earlier codes are stale
                return self._encode_texts(texts)
            codes[short] = codes[holder]
            self._table.insert(words, distinct, codes[distinct])
        # runs of consecutive odd words (each text's first among them) are encoded as one stretch, by pieces
        odd = np.flatnonzero(codes == _IRREGULAR)
        is_first = np.zeros(len(codes), dtype=bool)
        is_first[words.firsts] = True
        new_run = np.r_[True, np.diff(odd) > 1] | is_first[odd]  # a run stops where the next text begins
        run_starts = odd[new_run]
        run_ends = np.r_[odd[np.flatnonzero(new_run)[1:] - 1], odd[-1]] + 1
        stretches = [self._ids_of(split_pieces(("" if is_first[a] else " ")
                                               + raw[words.starts[a]:words.ends[b - 1]].decode()))
                     for a, b in zip(run_starts.tolist(), run_ends.tolist())]
        codes[odd] = _EMPTY_CODE
        out = self._word_multi.expand(codes)
        lengths = self._word_multi.token_counts(codes)
        stretch_lengths = np.fromiter(map(len, stretches), np.int64, len(stretches))
        where = (np.cumsum(lengths) - lengths)[run_starts]  # each stretch goes where its first word stood
        out = np.insert(out, np.repeat(where, stretch_lengths), np.concatenate(stretches))
        lengths[run_starts] += stretch_lengths
        return np.split(out, (np.cumsum(lengths) - lengths)[words.firsts[1:]])

    def _learn_words(self, words: list[str]) -> None:
        """Work out and cache the codes of words not seen before, through the piece path: ASCII words in one pass
        of the faster pattern, the others in one of the full one."""
        # str.isspace covers the pattern's \s (and \x1c-\x1f besides): the safe side
        is_regular = [bool(w) and not w[0].isspace() and not w[-1].isspace() for w in words]
        self._words.update(dict.fromkeys((w for w, ok in zip(words, is_regular) if not ok), _IRREGULAR))
        regular = [w for w, ok in zip(words, is_regular) if ok]
        ascii_words = [w for w in regular if w.isascii()]
        for group, pattern in ((ascii_words, ASCII_PATTERN), ([w for w in regular if not w.isascii()], PATTERN)):
            if group:
                self._learn_regular(group, pattern)

    def _learn_regular(self, words: list[str], pattern: re.Pattern | regex.Pattern) -> None:
        # " w1 w2 w3 ...": no piece crosses from one regular word into the next, so one split serves them all
        pieces = pattern.findall("".join(" " + w for w in words))
        piece_codes = self._piece_codes(pieces)
        ids = self._multi.expand(piece_codes)
        piece_ends = np.cumsum(np.fromiter(map(len, pieces), np.int64, len(pieces)))
        word_ends = np.cumsum(np.fromiter(map(len, words), np.int64, len(words)) + 1)
        last_piece = np.searchsorted(piece_ends, word_ends)  # the piece that ends each word
        token_ends = np.cumsum(self._multi.token_counts(piece_codes))[last_piece]
        codes = self._word_multi.add(ids, np.diff(token_ends, prepend=0))
        self._words.update(zip(words, codes.tolist()))

    def encode(self, text: str) -> list[int]:
        return self._checked(self._encode_text, text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """`encode` for whole corpora: a long text is cut at safe points (`cuts.py`) and its parts are
        encoded by forked worker processes, one per core, that inherit the caches."""
        n = cores()
        if n > 1 and len(text) >= PROCESS_MIN and can_fork_workers():
            return self._checked(lambda t: self._encode_in_processes(split_text(t, PARALLEL_CHUNK), n), text)
        return self._checked(self._encode_text, text).astype(id_dtype(self.vocab_size))

    def encode_many(self, texts: list[str]) -> list[np.ndarray]:
        """`encode_array` of each text, texts of up to PARALLEL_CHUNK characters together in one pass: for
        documents of a few kilobytes, a pass each would cost more in fixed numpy overhead than their words."""
        dtype, out = id_dtype(self.vocab_size), []
        for group in _groups(texts, PARALLEL_CHUNK):
            if len(group) == 1:
                out.append(self.encode_array(group[0]))
            else:
                out += [ids.astype(dtype) for ids in self._checked(self._encode_texts, group)]
        return out

    @staticmethod
    def _checked(encode: Callable[[Any], Any], text: str | list[str]) -> Any:
        """`encode(text)`, with check_text's message for a lone surrogate. Encoding reads the text as UTF-8, which
        refuses one anyway: a separate scan of the text beforehand would cost a tenth of the encoding."""
        try:
            return encode(text)
        except UnicodeEncodeError:
            for one in [text] if isinstance(text, str) else text:
                check_text(one)  # raises, naming the surrogate
            raise

    def _encode_in_processes(self, parts: list[str], n: int) -> np.ndarray:
        """The first part here, the rest in forked workers: they inherit the caches that the first part filled
        with the text's commonest words, which each would otherwise learn again on its own."""
        global _WORKER_TOKENIZER
        first = self._encode_text(parts[0]).astype(id_dtype(self.vocab_size))
        if len(parts) == 1:
            return first
        _WORKER_TOKENIZER = self  # forked workers inherit it, caches included
        try:
            with process_pool(min(n, len(parts) - 1)) as pool:
                return np.concatenate([first, *pool.map(_encode_part, parts[1:], chunksize=1)])
        finally:
            _WORKER_TOKENIZER = None

    # ------------------------------------------------------------------ decoding

    def decode(self, ids: list[int]) -> str:
        """Join the tokens' bytes, then read them as UTF-8; a character cut off by the end shows as U+FFFD."""
        return b"".join(map(self._bytes.__getitem__, ids)).decode("utf-8", "replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[token_id]

    # ------------------------------------------------------------------ saving

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": 1, "specials": self.special_text, "hf_tokenizer": self.hf_pipeline}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BpeTokenizer:
        return cls(data["hf_tokenizer"], data.get("specials"))



def _groups(texts: list[str], size: int) -> Iterator[list[str]]:
    """Consecutive texts in groups of at most `size` characters (a longer text forms a group alone)."""
    group: list[str] = []
    chars = 0
    for text in texts:
        if group and chars + len(text) > size:
            yield group
            group, chars = [], 0
        group.append(text)
        chars += len(text)
    if group:
        yield group


_WORKER_TOKENIZER: BpeTokenizer | None = None


def _encode_part(part: str) -> np.ndarray:
    tok = _WORKER_TOKENIZER
    return tok._encode_text(part).astype(id_dtype(tok.vocab_size))
