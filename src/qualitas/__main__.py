import sys

from qualitas.cli.main import main

sys.exit(main())
