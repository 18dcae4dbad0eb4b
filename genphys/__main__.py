"""``python -m genphys`` (also what ``accelerate launch -m genphys`` runs)."""

import sys

from genphys.cli import main

sys.exit(main())
