"""vfl.evaluation."""
