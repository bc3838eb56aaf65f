"""Stage 1, text to tokens: reading a corpus (`corpus`), previewing it (`preview`), tokenizers (`tokenization`),

the memmapped token store the trainer samples from (`tokenstore`), and picking the context for a question
(`retrieval`)."""
