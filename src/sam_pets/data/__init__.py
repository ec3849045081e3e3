"""Datasets: read and write segmentation datasets, sample prompts, feed training.

Pure core: numpy, torch, PIL, tifffile, scikit-image, scipy and pycocotools only; never Qt
or napari. Importing this package is cheap; import the submodules you need:

- :mod:`sam_pets.data.types`: in-memory :class:`~sam_pets.data.types.Annotation` and summaries.
- :mod:`sam_pets.data.imaging`: robust image loading and the RGB uint8 conversion rule.
- :mod:`sam_pets.data.formats`: one module per on-disk format: Oxford-IIIT Pet, the canonical
  SAM 2 folder and its manifest, plain SAM 2 folders, COCO, LabelMe, label images.
- :mod:`sam_pets.data.convert`: conversion jobs (generators yielding Progress), run by
  :mod:`sam_pets.data.pipeline`.
- :mod:`sam_pets.data.export`: add or replace one item of a canonical dataset; COCO export.
- :mod:`sam_pets.data.dataset`, :mod:`sam_pets.data.augment`: torch Datasets and augmentation.
- :mod:`sam_pets.data.prompts`: box, point and correction-click sampling.
- :mod:`sam_pets.data.split`: seeded stratified splits and balancing weights.
"""
