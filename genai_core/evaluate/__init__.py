"""Stage 6, measuring a trained run: held-out loss and perplexity (`perplexity`), answers to a QA file scored by
exact match, F1 and ROUGE-L (`answers`, `scoring`), and saved results (`results`)."""
