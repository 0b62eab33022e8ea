"""The Alembic environment, revisions and custom operations of suho-mt5, shipped in the wheel.

``alembic.ini`` points at this package (``script_location = suho_mt5:migrations``), and
:mod:`suho_mt5.commands` runs it without any ini file, so an installed package can migrate a
database on its own. Revisions import :mod:`suho_mt5.migrations.operations`, never the ORM.
"""
