import sys

from meshc.cli import main

sys.exit(main())
