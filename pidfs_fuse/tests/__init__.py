"""Unit tests: the model, the presentation and the control plane, without a mount."""
