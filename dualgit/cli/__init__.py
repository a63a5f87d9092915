"""The command line: `main` (the entry point, with exec's and the hook's fast paths), `app` (typer),
`commands/` (one module per command), and what is made from the commands' definitions: help,
`completion` and the `manpage`."""
