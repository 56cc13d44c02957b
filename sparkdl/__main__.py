import sys

from sparkdl.cli import main

sys.exit(main())
