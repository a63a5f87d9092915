"""dualgit's built-in setup steps, each packaged and registered exactly as a third party's would be."""
