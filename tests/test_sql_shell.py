"""kb sql fed a script on stdin: a statement that fails makes the shell exit non-zero on both
databases (sqlite3 does so by itself; psql only with ON_ERROR_STOP), so `kb sql < script.sql` in a
script or a cron job does not report success when the database refused the script."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy.engine import URL

from .conftest import kb_process, skip_or_fail


def _need_shell(url: URL) -> None:
    shell = "sqlite3" if url.get_backend_name() == "sqlite" else "psql"
    if shutil.which(shell) is None:
        skip_or_fail(f"the {shell} shell is not installed")


@pytest.mark.parametrize("script", ["SELECT no_such_column FROM cards;\n", "DELETE FROM cards;\n"],
                         ids=["bad-column", "write-refused"])
def test_a_failing_statement_on_stdin_exits_non_zero(db_url: URL, script: str) -> None:
    _need_shell(db_url)
    result = kb_process(db_url, "sql", input=script)
    assert result.exit_code != 0, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.strip(), result.stdout


def test_a_good_script_on_stdin_exits_zero(db_url: URL) -> None:
    _need_shell(db_url)
    result = kb_process(db_url, "sql", input="SELECT count(*) AS n FROM cards;\n")
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    assert "0" in result.stdout
