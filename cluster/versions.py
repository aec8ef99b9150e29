"""Every version the local cluster is built from, in one place. The Go modules under
cluster/go/ require the same versions (their go.mod is what the build uses; these name the
images and the caches)."""

# The tools, built with `go install` when not on PATH (devstack/binaries.py).
KIND_VERSION = "v0.33.0"
HELM_VERSION = "v3.22.0"

# Kubernetes and its staging modules (cluster/go/kubernetes/go.mod).
KUBERNETES_VERSION = "v1.37.2"
KUBERNETES_STAGING_VERSION = "v0.37.2"
# What kubeadm v1.37.2 deploys (`kubeadm config images list`), built from their modules.
ETCD_VERSION = "v3.7.0"
ETCD_IMAGE_TAG = "3.7.0-0"
COREDNS_VERSION = "v1.14.6"
PAUSE_IMAGE_TAG = "3.10.2"
# The node's container runtime (cluster/go/containerd/go.mod); runc comes from Debian.
CONTAINERD_VERSION = "v2.3.4"

# Dapr's control plane and the injected sidecar (cluster/go/dapr/go.mod), the same release
# as the local stack's daprd (daprd/go.mod).
DAPR_VERSION = "v1.18.1"

# Resource metrics for `kubectl top` and the HPAs (cluster/go/metrics-server/go.mod); v0.9.0
# is the release built on the Kubernetes v1.36 libraries, nearest to ours.
METRICS_SERVER_VERSION = "v0.9.0"
# NetworkPolicy enforcement (cluster/go/kube-router/go.mod): kube-router's firewall only,
# iptables and ipset rules beside the node's own CNI.
KUBE_ROUTER_VERSION = "v2.1.0"

# The Debian suite of the node's and the images' root filesystems.
DEBIAN_SUITE = "bookworm"

# Where images can be pulled: the node image published with this kind release (its newest
# Kubernetes is v1.37.0; the patch release above is what we build ourselves).
KIND_NODE_IMAGE = (
    "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
)
