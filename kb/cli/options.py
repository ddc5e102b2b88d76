"""What the commands share: the handle they get (``pass_kb``) and the options several of them take."""

from __future__ import annotations

import getpass

import click

from kb.handle import KnowledgeBase

pass_kb = click.make_pass_decorator(KnowledgeBase)
"""Passes the :class:`~kb.handle.KnowledgeBase` that the ``kb`` group made to the command."""

quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="No progress or summary on stderr (warnings and failures still shown).")

author_option = click.option(
    "--author", envvar="KB_CURATOR", show_envvar=True,
    help="Who is curating (default: $KB_CURATOR, else the login name).")


def author_or_login(author: str | None) -> str:
    """The ``--author`` given (or $KB_CURATOR, through the option), else the login name."""
    return author or getpass.getuser()
