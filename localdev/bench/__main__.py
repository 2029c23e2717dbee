import sys

from localdev.bench.cli import main

sys.exit(main())
