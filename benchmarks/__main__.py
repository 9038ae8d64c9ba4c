"""`python -m benchmarks`: run the harness."""
import sys

from benchmarks.harness import main

sys.exit(main())
