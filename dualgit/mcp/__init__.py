"""`git dual mcp`: dualgit as Model Context Protocol tools for coding agents."""
