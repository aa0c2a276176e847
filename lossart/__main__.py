"""`python -m lossart` (and `torchrun -m lossart`) runs the CLI."""

from lossart.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
