"""Stage 5, using a trained model: sampling and streaming (`sampling`, `decoding`), beam search (`beam`), the
Chat page's decoding modes and prompts (`chat`), question answering (`qa`) and views inside the model
(`inspection`)."""
