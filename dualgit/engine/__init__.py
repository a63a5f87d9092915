"""The container engine: finding it and speaking its HTTP API (`api.DockerAPI`). Nothing here knows
about git or worktrees."""
