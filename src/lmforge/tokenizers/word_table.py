"""Short words looked up in numpy, without a Python string per word.

The BPE encoder caches the ids of each space-led word (bpe.py). Cutting a corpus
into Python strings and looking each up in a dict costs about 300 ns a word, more
than tiktoken's whole encoder. Most words are short, though, and a word of at
most 16 bytes is fully described by three numbers: its length, its first 8
bytes and its last 8 bytes (read as little-endian integers, the bytes past a
short word masked off). So the text's UTF-8 bytes are cut at spaces with numpy,
those three numbers are read for every word at once, and a direct-mapped table
of them gives each word's cache code in a few vectorized gathers.

Lookups compare all three numbers, so a hit is exact: two words that share a
slot simply leave one of them to the dict path. Words the table does not cover
(longer than 16 bytes, empty, starting or ending with whitespace or a non-ASCII
character, or not seen yet) go through the dict path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLOT_BITS = 19  # 524,288 slots, 16 MB: about as many as the dict cache holds words
MAX_BYTES = 16
_EMPTY = -1
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # ASCII whitespace, by Python's and regex's \s
_ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


@dataclass
class Words:
    """Every space-separated word of a UTF-8 text, as byte spans and table keys."""

    starts: np.ndarray  # (W,) byte offset where each word begins
    ends: np.ndarray  # (W,) byte offset where it ends (its space, or the end of the text)
    length: np.ndarray  # (W,) bytes
    first8: np.ndarray  # (W,) uint64: the first 8 bytes, masked to the word's length
    last8: np.ndarray  # (W,) uint64: the last 8 bytes of a word longer than 8, else 0
    key: np.ndarray  # (W,) uint64: a hash of (length, first8, last8); equal words have equal keys
    slot: np.ndarray  # (W,) int64: the word's slot in a WordTable
    eligible: np.ndarray  # (W,) bool: the table may hold this word
    firsts: np.ndarray  # (T,) the first word of each text (the only words with no space before them)

    @classmethod
    def of(cls, raw: bytes, breaks: np.ndarray | None = None) -> Words:
        """The words of `raw`; `breaks`: byte offsets where texts joined end to end meet, which end a word as the
        end of the text does (a text that ends with a space ends with an empty word)."""
        n = len(raw)
        padded = raw + bytes(MAX_BYTES)  # 8-byte reads near the end stay inside the buffer
        b = np.frombuffer(padded, dtype=np.uint8)
        at = np.ndarray(shape=(n + 8,), dtype="<u8", buffer=padded, strides=(1,))  # the 8 bytes from each offset
        spaces = np.flatnonzero(b[:n] == 32)
        starts = np.concatenate(([0], spaces + 1))
        ends = np.concatenate((spaces, [n]))
        firsts = np.zeros(1, dtype=np.int64)
        if breaks is not None and len(breaks):
            starts = np.insert(starts, np.searchsorted(starts, breaks), breaks)  # both stay sorted
            ends = np.insert(ends, np.searchsorted(ends, breaks), breaks)
            # text i's first word comes after the words of the spaces before it and one more per text before it
            firsts = np.concatenate((firsts, np.searchsorted(spaces, breaks) + np.arange(1, len(breaks) + 1)))
        length = ends - starts
        short = length < 8
        bits = np.where(short, length * 8, 0).astype(np.uint64)
        first8 = at[starts] & np.where(short, (np.uint64(1) << bits) - np.uint64(1), _ALL_ONES)
        last8 = np.where(length > 8, at[np.maximum(ends - 8, 0)], np.uint64(0))
        head, tail = b[starts], b[np.maximum(ends - 1, 0)]
        eligible = ((length >= 1) & (length <= MAX_BYTES) & (head < 0x80) & (tail < 0x80)
                    & ~_WHITESPACE[head] & ~_WHITESPACE[tail])
        key = ((first8 * np.uint64(0x9E37_79B9_7F4A_7C15)) ^ (last8 * np.uint64(0xC2B2_AE3D_27D4_EB4F))
               ^ (length.astype(np.uint64) * np.uint64(0x1656_67B1_9E37_79F9)))  # each part reaches the top bits
        slot = (key >> np.uint64(64 - SLOT_BITS)).astype(np.int64)
        return cls(starts, ends, length, first8, last8, key, slot, eligible, firsts)

    def same(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether words a[i] and b[i] are the same word, for eligible words (those are their three numbers)."""
        return (self.length[a] == self.length[b]) & (self.first8[a] == self.first8[b]) & (self.last8[a] == self.last8[b])

    def distinct(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For eligible `rows`: the rows of their distinct words, and for each row, the one of those that holds its
        word. A fresh corpus repeats its new words many times over; each is then worked out once."""
        _, first, which = np.unique(self.key[rows], return_index=True, return_inverse=True)
        holder = rows[first][which]
        clash = ~self.same(rows, holder)  # two words with one key (rare): each stands for itself
        holder[clash] = rows[clash]
        return np.concatenate([rows[first], rows[clash]]), holder


class WordTable:
    """A direct-mapped table from (length, first 8 bytes, last 8 bytes) to a cache code."""

    def __init__(self):
        size = 1 << SLOT_BITS
        self.length = np.full(size, _EMPTY, dtype=np.int64)
        self.first8 = np.zeros(size, dtype=np.uint64)
        self.last8 = np.zeros(size, dtype=np.uint64)
        self.code = np.zeros(size, dtype=np.int64)

    def lookup(self, words: Words, missing: int) -> np.ndarray:
        """Each word's code, or `missing` where the table does not hold it."""
        s = words.slot
        hit = (words.eligible & (self.length[s] == words.length) & (self.first8[s] == words.first8)
               & (self.last8[s] == words.last8))
        return np.where(hit, self.code[s], missing)

    def insert(self, words: Words, rows: np.ndarray, codes: np.ndarray) -> None:
        """Remember the codes of words `rows` where they are eligible and their slot is free."""
        keep = words.eligible[rows]
        rows, codes = rows[keep], codes[keep]
        s = words.slot[rows]
        free = self.length[s] == _EMPTY
        s, rows, codes = s[free], rows[free], codes[free]
        self.length[s], self.first8[s], self.last8[s], self.code[s] = (
            words.length[rows], words.first8[rows], words.last8[rows], codes)
