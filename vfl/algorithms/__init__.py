"""vfl.algorithms."""
