"""Private set intersection (ECDH-PSI on X25519) and sample alignment; see docs/psi.md."""

from vfl.psi.artifact import artifact_id, load_alignment, save_alignment
from vfl.psi.ecdh import PsiResult, align, guest, host

__all__ = [
    "PsiResult",
    "align",
    "artifact_id",
    "guest",
    "host",
    "load_alignment",
    "save_alignment",
]
