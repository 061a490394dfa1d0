"""Late review (H10) of the CLI's command dispatch (f439389, 67455f0, 022859d).

A mistyped stage name gets no "Did you mean" for the stage: Typer suggests only from the
commands it has built (`TyperGroup.commands`, the written ones), while stage commands are
made on demand in `_Commands.get_command`. So `dataprep shrad` suggests 'head', and
`dataprep dedupe` / `dataprep tokenise` suggest nothing. (Already so before f439389.)

Oracle: difflib's own matches over the names `dataprep --help` lists (stages included),
which is what Typer does for the commands it knows.
"""

from __future__ import annotations

import pytest
from helpers import cli


@pytest.mark.parametrize(("typo", "stage"), [("shrad", "shard"), ("dedupe", "dedup")])
def test_a_mistyped_stage_name_suggests_the_stage(typo: str, stage: str) -> None:
    done = cli(typo, "in", "-o", "out", check=False)
    assert done.returncode == 2
    assert f"No such command '{typo}'" in done.stderr
    assert f"'{stage}'" in done.stderr.split("Did you mean", 1)[-1], done.stderr
