"""The C bridges: the only modules that load the compiled kernels."""
