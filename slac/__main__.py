import sys

from slac.cli import main

sys.exit(main())
