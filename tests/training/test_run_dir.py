"""The run directory's files: atomic writes, weights that must match the model, no run written over another."""

import pytest
import torch
from safetensors.torch import save_file

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models import build_model
from lmforge.training.run_dir import METRICS_FILE, atomic_write, check_out_dir, load_weights, save_weights


@pytest.mark.parametrize("interrupt", [OSError, KeyboardInterrupt])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, interrupt):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old")

    def half_then_stop(tmp):
        tmp.write_bytes(b"half of the new")
        raise interrupt

    with pytest.raises(interrupt):
        atomic_write(path, half_then_stop)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_weights_missing_a_tensor_are_refused(tmp_path):
    model = build_model(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), 10)
    save_weights(model, tmp_path / "whole.safetensors")
    load_weights(model, tmp_path / "whole.safetensors")
    partial = {k: v.contiguous() for k, v in model.state_dict().items() if k not in ("head.weight", "norm.weight")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(LmforgeError, match=r"does not match the model.*missing \['norm.weight'\]"):
        load_weights(model, tmp_path / "partial.safetensors")


def test_a_folder_with_only_a_metrics_file_already_holds_a_run(tmp_path):
    check_out_dir(tmp_path)  # empty: fine
    (tmp_path / METRICS_FILE).write_text("{}\n")
    with pytest.raises(LmforgeError, match="already holds a run"):
        check_out_dir(tmp_path)
