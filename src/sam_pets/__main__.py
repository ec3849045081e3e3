"""Entry point for ``python -m sam_pets``."""

import sys

from sam_pets.cli import main

if __name__ == "__main__":
    sys.exit(main())
