"""SecureBoost, gradient-boosted trees with Paillier histograms: the estimator and the host's
role (`estimator`), the protocol of a tree (`protocol`), the bins (`binning`), packed gradients
(`packing`), histograms (`histograms`), the split gain and tree (`tree`), the model parts
(`model`) and the registration (`algorithm`). See docs/secureboost.md."""
