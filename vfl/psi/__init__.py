"""Private set intersection (ECDH-PSI on X25519) and sample alignment; see docs/psi.md."""

from vfl.psi.ecdh import PsiResult, align, guest, host

__all__ = [
    "PsiResult",
    "align",
    "guest",
    "host",
]
