"""sedna_cli."""
