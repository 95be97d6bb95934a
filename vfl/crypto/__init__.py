"""vfl.crypto."""
