import sys

from pcc.cli import main

sys.exit(main())
