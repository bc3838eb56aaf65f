"""Stage 4, the run folder, the disk being the source of truth: its files, status and checkpoints (`folder`),
export, import, rename and delete (`archive`), the HTML report (`report`), and comparing runs (`compare`)."""
