import sys

from slac.app.cli import main

sys.exit(main())
