"""The batch progress bar: rich on a terminal, silent in CI logs and pipes.

It is drawn on stderr, like every message that is not a result (cli.md), so
``autograder grade ... > table.txt`` keeps only the results table."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def batch_progress(total: int, label: str, enabled: bool = True):
    """Yields ``advance(sid)``; draws a bar only on an interactive terminal."""
    if not enabled or total == 0 or os.environ.get("CI") or not sys.stderr.isatty():
        yield lambda sid: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}")]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total, last="")
        yield lambda sid: bar.update(task, advance=1, last=sid)
