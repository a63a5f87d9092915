"""Hook shim templates: `git dual install` fills in the interpreter and writes them to git's hooks dir."""
