"""HE logistic regression: the estimator and the host's role (`estimator`), the protocol of a
mini-batch (`protocol`), the model parts (`model`) and the registration (`algorithm`)."""
