"""Interoperability with Hugging Face `transformers`: export a run, import a local checkpoint.

Only files are exchanged (config.json, model.safetensors, tokenizer.json, ...); lmforge
never imports `transformers` at run time and never downloads anything.
"""
