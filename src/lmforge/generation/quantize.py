"""Int8 weights for decoding on a CPU: a quarter of the bytes to read per token.

At batch 1 a decode step multiplies one vector by every weight matrix once, so a
CPU spends it waiting for the weights to stream in from memory, not on arithmetic
(a GPT-2-small step reads about 500 MB of float32). Storing each Linear layer's
weights as int8, with one scale per output row, and quantizing each activation
vector on the fly (PyTorch's dynamic quantization, its fbgemm / x86 int8 kernels)
reads a quarter of those bytes: about 3× the tokens per second of float32 on two
cores (`benchmarks/decode.py --quantize int8`).

The price is precision: logits move by a few percent of their spread, so a long
greedy decode can part from float32's at a near tie. `lmforge eval --quantize int8`
measures what that costs in loss. Only a copy is quantized; the run's weights on
disk stay float32.

Why PyTorch's eager `quantize_dynamic` and not torchao, the API PyTorch points to: on a
CPU, in the eager mode lmforge decodes in, torchao's int8 layers (0.18) were slower than
float32 itself (21.9 ms against 19.7 ms a pass, where `quantize_dynamic` took 6.6 ms;
`benchmarks/int8_api.py`, `benchmarks/RESULTS.md`), and torchao is another dependency.
The warning that the eager API will move is silenced because a user can do nothing
about it; when it does move, `benchmarks/int8_api.py` measures the replacement.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from lmforge.errors import LmforgeError
from lmforge.generation.decode import model_device
from lmforge.models.base import LanguageModel

QUANTIZE = ("none", "int8")


def quantize_model(model: LanguageModel, scheme: str = "int8") -> LanguageModel:
    """A copy of `model` whose Linear layers hold int8 weights (`scheme` "none": the model itself).

    Embeddings, norms and an RNN's recurrent cell stay float: they are small or read
    a row at a time. A model without Linear layers (an n-gram table) is returned as is.
    """
    if scheme not in QUANTIZE:
        raise LmforgeError(f"--quantize must be one of {', '.join(QUANTIZE)}, not '{scheme}'")
    if scheme == "none" or not any(isinstance(m, nn.Linear) for m in model.modules()):
        return model
    device = model_device(model)
    if device.type != "cpu":
        raise LmforgeError(f"--quantize int8 runs on a CPU, and this model is on {device.type}; add --device cpu, "
                           "or on a GPU decode in bfloat16 instead")
    engines = torch.backends.quantized.supported_engines
    if not any(e in engines for e in ("x86", "fbgemm", "qnnpack")):
        raise LmforgeError("this PyTorch build has no int8 CPU kernels (no x86, fbgemm or qnnpack engine); "
                           "decode without --quantize")
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's eager quantization warns that it will move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear: per_channel_dynamic_qconfig})
