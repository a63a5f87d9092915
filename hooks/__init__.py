"""The git hook scripts dualgit installs (`git dual install`), shipped as the package data of
`dualgit_hooks`, as the built-in plugins are shipped as `dualgit_plugins`: a few lines of POSIX sh
each, with `@INSTALL_PYTHON@` filled in at install time."""
