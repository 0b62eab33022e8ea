"""Plain typed functions under the ``suho-mt5`` command line (like alembic's ``command.py``).

The CLI only parses and formats; tests and applications call these functions directly. One
module per layer: :mod:`suho_mt5.commands.db` for the database.
"""
