"""Parts of pages too large to read inside one page file; each part draws, the engine decides."""
