"""Quality gates: which generated items are fit to keep, and why the others are not."""
