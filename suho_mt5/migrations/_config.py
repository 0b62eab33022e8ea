"""The Alembic configuration of the migrations shipped in this package.

An installed wheel has no ``alembic.ini``: :func:`alembic_config` builds the same
configuration in code, so :mod:`suho_mt5.commands.db` and the offline SQL generator work
from anywhere. In a checkout, ``alembic -c alembic.ini`` reads the same ``script_location``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from alembic.config import Config

__all__ = ["SCRIPT_LOCATION", "alembic_config"]

#: Where Alembic finds env.py and versions/: this package, wherever it is installed.
SCRIPT_LOCATION = "suho_mt5:migrations"


def alembic_config(
    alembic_ini: Path | str | None = None, *, output_buffer: TextIO | None = None
) -> Config:
    """An Alembic :class:`~alembic.config.Config` for the suho-mt5 migrations.

    Without ``alembic_ini`` no file is read: the script location is this package and
    env.py leaves logging to the caller.

    >>> alembic_config().get_main_option("script_location")
    'suho_mt5:migrations'
    """
    if alembic_ini is not None:
        return Config(str(alembic_ini), output_buffer=output_buffer)
    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", SCRIPT_LOCATION)
    # alembic.ini's choice, so that `alembic revision` names files the same way from here.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("path_separator", "os")
    return config
