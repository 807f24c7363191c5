"""lmforge: train language models from scratch on your own text.

    import lmforge
    run = lmforge.load("runs/NAME")            # model, tokenizer and config of a run directory
    ids = run.tokenizer.encode("ROMEO:")
    logits = run.model(torch.tensor([ids]))    # (batch, time, vocab) next-token logits
    text = run.generate("ROMEO:", max_new_tokens=100, temperature=0.8, top_p=0.95)
"""

from lmforge.config import Config
from lmforge.errors import LmforgeError
from lmforge.run import Run, load

__version__ = "0.1.0"
__all__ = ["Config", "LmforgeError", "Run", "__version__", "load"]
