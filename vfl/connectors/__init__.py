"""vfl.connectors."""
