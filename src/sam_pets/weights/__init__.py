"""Model weights shipped inside the package: ``pets.pt``, the built-in pets model.

Load it with ``sam_pets.model.hub.resolve_model("pets")``; see README.md in this folder.
"""
