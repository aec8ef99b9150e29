"""The local Kubernetes cluster: a kind cluster whose node image, and every image on it, can be
built here from source modules and Debian packages, offline, and cached by version."""
