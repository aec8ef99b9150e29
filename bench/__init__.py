"""The benchmark: this service beside its floor and a naive peer, on one machine (`./bench/run`)."""
