"""Fine-tuning engine (pure core: torch, no Qt or napari).

Entry points (import the submodules; importing this package is cheap):

- :class:`sam_pets.train.config.TrainConfig` (frozen; YAML via ``load_config`` /
  ``dump_config``, unknown keys are an error).
- :func:`sam_pets.train.loop.iter_fit` yields :class:`~sam_pets.progress.Progress` records
  and returns a :class:`~sam_pets.train.loop.FitResult`; :class:`~sam_pets.train.loop.TrainJob`
  adds a thread-safe ``stop()``; :func:`~sam_pets.train.loop.fit` runs silently.
- Building blocks: :mod:`~sam_pets.train.step` (one batch's interactive-prompt loss),
  :mod:`~sam_pets.train.losses`, :mod:`~sam_pets.train.optim` (param groups, schedules),
  :mod:`~sam_pets.train.lora`, :mod:`~sam_pets.train.data` (orders, seeds, feature cache),
  :mod:`~sam_pets.train.validate`, :mod:`~sam_pets.train.rundir` (files of a run).

Semantics worth knowing (SAM2_IMAGE_SPEC.md §8 unless stated):

- Per image: encoder once; first prompt = jittered box (``prob_box``) or positive click(s)
  for all its objects; then ``correction_rounds`` clicks drawn uniformly from the error
  region, with the previous round's selected low-res logits (detached) as mask prompt.
- Losses at the model input resolution by default (``loss_resolution="input"``); every round
  supervised; normalised by the number of objects in the local batch.
- Differences from Meta's trainer: masks are not forced to -1024 when the object score is
  negative (the image predictor does not do it either); gradients are averaged across
  processes with one coalesced all-reduce per optimiser step rather than a
  ``DistributedDataParallel`` wrapper (same update, simpler with per-round backward);
  validation runs on every rank (identical results, so early stopping needs no messages).
"""
