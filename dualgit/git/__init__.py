"""The repository: `locate` reads git's own files with the standard library (the hot paths);
`repository` opens the repository and lists its worktrees, from the same files."""
