"""Stage 3, training: the trainer and its events (`trainer`), the one training step and its optimizers
(`optim`), what a run will cost before it starts (`estimates` and its parts), where runs train (`jobs`:
threads, processes through `launcher`, Ray through `ray_jobs`), and grids of runs (`grid`)."""
