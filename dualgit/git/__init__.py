"""The repository: `locate` reads git's own files with the standard library (the hot paths);
`repository` builds the full worktree list with pygit2."""
