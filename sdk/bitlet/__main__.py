"""``python -m bitlet`` runs the command line (see bitlet.cli)."""
import sys

from bitlet.cli import main

sys.exit(main())
