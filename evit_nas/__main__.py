"""``python -m evit_nas`` runs the command line."""

import sys

from .main import main

sys.exit(main())
