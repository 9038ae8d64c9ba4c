"""`python -m timeline` runs the command line."""
import sys

from timeline.surfaces.cli import main

sys.exit(main())
