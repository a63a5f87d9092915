"""From the user's shell into the container: `exec` (`git dual exec`), `route` (which commands a
PATH shim sends in) and `shims` (the PATH shims and shell-init)."""
