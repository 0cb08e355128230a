"""Training shared by every model family: import from the modules themselves.

* ``trainer.Trainer(model, loss, cfg, run_dir, data).fit()``: any model and a ``loss(model, batch)`` callable;
  resumable by running the same command again (exact on CPU), DDP / FSDP2 under ``torchrun``;
* ``train_config.TrainConfig``: every knob of the Trainer (the ``train:`` section of a run's config.yaml);
* ``runtime.init_runtime``: device, rank and world size, decided once per process;
* ``checkpoint``: the ``train_state/`` folder (raw weights, EMA, optimizers, RNG, data position);
* ``progress.read_logs``: a run's ``logs.jsonl``.

Nothing here is needed to load or run a trained model (that is ``worldsmith.weights``).
"""
