"""vfl.serving."""
