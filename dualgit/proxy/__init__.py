"""The built-in proxy: per-branch URLs (`http://<branch>.<repo>.localhost:<port>`) and raw TCP ports."""
