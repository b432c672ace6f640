"""Three-body problem simulator (Breen et al. 2020 setup)."""
