"""`python -m skintwin ...` is the `skintwin` command."""

from skintwin.ops.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
