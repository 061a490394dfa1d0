"""`dataprep train`: a GPT-style decoder trained with DDP on the reader's batches.

Modules: `config` (settings), `data` (what the dataset must hold), `model`, `loop` (one rank),
`checkpoint` (atomic, with the reader state; `checksums` verify it, `rng` keeps the
generators' state as JSON), `metrics`, `launch` (torch's elastic launcher).
Only this package and `dataprep.loader` import torch.
"""
