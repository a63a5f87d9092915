"""Option names that typer's definitions (`app`) and the fast paths (`main`) share."""

JSON = "--json"  # `ls` and `urls` take it, on their fast path too
