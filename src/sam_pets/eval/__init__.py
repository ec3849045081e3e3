"""Evaluation: metrics, prompt protocols, evaluation and robustness jobs, reports.

No Qt or napari here; plots use matplotlib's object API (no pyplot state).

- :mod:`~sam_pets.eval.metrics`: IoU, Dice and pixel accuracy with an ignore mask.
- :mod:`~sam_pets.eval.interactive`: simulated correction clicks (mIoU@k) and NoC.
- :mod:`~sam_pets.eval.protocols`: box, jittered box, centre click, random click.
- :mod:`~sam_pets.eval.items`: checked reading of a canonical dataset's items.
- :mod:`~sam_pets.eval.evaluate`: the evaluation job (:func:`iter_evaluate`, ``EvalResult``).
- :mod:`~sam_pets.eval.summary`: means per group and the 3-category (cat/dog/background) mIoU.
- :mod:`~sam_pets.eval.perturb` and :mod:`~sam_pets.eval.robustness`: the robustness study.
- :mod:`~sam_pets.eval.report`, :mod:`~sam_pets.eval.robustness_report`, :mod:`~.plots`,
  :mod:`~.html`: the report folders (JSON, CSV, PNG, HTML).
"""
