"""A worktree whose container runs on another machine: the process that keeps its files in step
(`files.py`, unison through the engine's connection) and its ports reachable from this one
(`forwards.py`), one per worktree, started by whatever brings the container up (`run.py`)."""
