"""Model families behind one interface (`LanguageModel`): ids in, next-token logits out."""

from lmforge.config import ModelConfig
from lmforge.models.base import LanguageModel, next_token_loss
from lmforge.models.ngram import NGram
from lmforge.models.rnn import RNN
from lmforge.models.transformer import Transformer

FAMILIES: dict[str, type[LanguageModel]] = {"transformer": Transformer, "rnn": RNN, "ngram": NGram}


def build_model(cfg: ModelConfig, vocab_size: int) -> LanguageModel:
    """The model `cfg` describes (its family already checked), over the tokenizer's `vocab_size` tokens."""
    model = FAMILIES[cfg.family](cfg, vocab_size)
    if cfg.lora_rank:  # a LoRA run: the same model with adapters beside the target layers
        from lmforge.adapt.lora import add_lora

        add_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    return model


__all__ = ["FAMILIES", "LanguageModel", "NGram", "RNN", "Transformer", "build_model", "next_token_loss"]
