"""Adapting a trained model: instruction fine-tuning, LoRA adapters, a classifier head, and built-in tasks."""
