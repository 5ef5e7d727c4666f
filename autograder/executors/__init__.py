"""Where a batch is graded when not in local processes (``grade --executor``)."""
