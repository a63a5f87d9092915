"""The setup runner: plugins' steps, run in order in the background after a container is made."""
