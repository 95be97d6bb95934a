"""The split neural network (torch): the estimators (`estimator`), the plan (`plan`), the HE
interactive layer (`interactive_layer`), module specs (`nn_spec`), the model parts (`parts`) and
the registration (`algorithm`, which imports torch only when a split NN is used)."""
