"""The three-body problem of Breen et al. (2020): simulator, rows, network and evaluation."""
