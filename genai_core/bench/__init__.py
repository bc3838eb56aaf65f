"""Benchmarks behind `python -m genai_core bench`: our training loop against a nanoGPT-style reference (`speed`)
and the classic vs modern recipe comparison (`recipes`)."""
