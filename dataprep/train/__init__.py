"""`dataprep train`: a GPT-style decoder trained with DDP on the reader's batches.

Modules: `config` (settings), `data` (what the dataset must hold), `model`, `loop` (one rank's
steps), `feed` (its batches, timed), `restore` (which checkpoint to resume from), `runlog`
(console, metrics and sample trace; `metrics` writes the records), `checkpoint` (atomic, with
the reader state; `checksums` verify it, `rng` keeps the generators' state as JSON), `worker`
(each process's entry), `launch` (torch's elastic launcher), `stops` and `user_error` (how a
run ends on a signal or a user error).
Only this package and `dataprep.loader` import torch.
"""
