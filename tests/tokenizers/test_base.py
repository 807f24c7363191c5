"""What every tokenizer shares: the id dtype, the specials' checks, loading by type."""

import numpy as np
import pytest

from lmforge.errors import LmforgeError
from lmforge.tokenizers import load_tokenizer
from lmforge.tokenizers.base import check_specials, id_dtype


def test_uint16_holds_ids_up_to_65535_and_no_more():
    assert id_dtype(2**16) is np.uint16  # ids 0 … 65535
    assert id_dtype(2**16 + 1) is np.uint32  # id 65536 would wrap to 0


@pytest.mark.parametrize("specials, message", [
    ({"sep": "<|sep|>"}, "unknown special-token role 'sep'; roles are bos, eos, pad, unk"),
    ({"eos": "<|x|>", "pad": "<|x|>"}, "two special tokens share one text"),
    ({"eos": ""}, "special token 'eos' needs a non-empty text"),
])
def test_specials_are_checked(specials, message):
    with pytest.raises(LmforgeError, match=message):
        check_specials(specials)


def test_a_file_of_an_unknown_type_names_the_known_ones(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"type": "sentencepiece", "version": 1}')
    with pytest.raises(LmforgeError, match="unknown type 'sentencepiece'; known: .*char"):
        load_tokenizer(path)
