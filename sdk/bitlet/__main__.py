"""``python -m bitlet`` runs the command line (see bitlet.tools.cli)."""
import sys

from bitlet.tools.cli import main

sys.exit(main())
