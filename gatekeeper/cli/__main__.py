"""`python -m gatekeeper.cli`: the `gatekeeper` command."""

from gatekeeper.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
