import sys

from meshfilter.cli import main

sys.exit(main())
