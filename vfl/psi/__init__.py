"""vfl.psi."""
