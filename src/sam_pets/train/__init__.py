"""Fine-tuning engine (pure core: torch, no Qt or napari).

Main entry points (import the submodules; importing this package is cheap):

- :class:`sam_pets.train.config.TrainConfig`, :func:`~sam_pets.train.config.load_config`.
- :func:`sam_pets.train.loop.iter_fit` (generator of Progress records, returns FitResult),
  :class:`~sam_pets.train.loop.TrainJob` (with ``stop()``), :func:`~sam_pets.train.loop.fit`.
- :mod:`sam_pets.train.losses`, :mod:`sam_pets.train.optim`, :mod:`sam_pets.train.lora`,
  :mod:`sam_pets.train.step` (one batch's interactive-prompt loss), :mod:`sam_pets.train.data`.
"""
