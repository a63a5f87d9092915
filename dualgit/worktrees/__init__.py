"""The model: one container per worktree. Its name and labels, how it is made (`containers`), what
it may not write (`readonly`), whose files it writes (`owner`), where its setup stands
(`setup_state`), and `reconcile`, which keeps containers and worktrees in step."""
