"""Data only: the word lists, conditions, sentence templates and question phrasings of the synthetic generator.

Nothing here draws a random number; `clinical.values`, `clinical.cases` and `clinical.questions` do. Editing a
table changes the generated files (and which templates are reserved): regenerate assets/ afterwards.
"""
