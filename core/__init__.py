"""Code shared by the order API and the placer: settings, the order model and the sidecar client."""
