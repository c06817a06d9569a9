"""Operations: the `skintwin` command, the local control plane, the demo, and process
launchers shared by the tests and the benchmarks."""
