import sys

from qualitas.cli.main import main

# Guarded: `--timeout` workers are spawned processes, which import the main module again.
if __name__ == "__main__":
    sys.exit(main())
