"""The embedded tiny policy: tokenizer, SFT training on the arithmetic task, and its profile."""
