"""``python -m suho_mt5``: the ``suho-mt5`` command line (how the demo starts its services)."""

from suho_mt5.cli import main

if __name__ == "__main__":
    main(prog_name="suho-mt5")
