"""SecureBoost: vertically federated gradient-boosted trees with Paillier histograms.

`SecureBoostClassifier` (the guest's estimator), `host_fit` / `host_predict` (a host's
roles) and the model parts `SBGuestPart` / `SBHostPart`; `algorithm` registers it as the job
algorithm ``secureboost``. See docs/secureboost.md.
"""

from vfl.algorithms.secureboost.estimator import SecureBoostClassifier, host_fit, host_predict
from vfl.algorithms.secureboost.model import SBGuestPart, SBHostPart

__all__ = ["SBGuestPart", "SBHostPart", "SecureBoostClassifier", "host_fit", "host_predict"]
