"""Plots and pages for reports people read in the Kubeflow UI."""
