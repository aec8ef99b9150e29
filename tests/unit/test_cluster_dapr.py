"""Dapr's control plane on the local cluster: one Dapr release everywhere, and the image layer
its components run from."""

import io
import re
import tarfile
from pathlib import Path

from cluster import dapr
from cluster.versions import DAPR_VERSION
from core.config import PROJECT_ROOT


def test_the_cluster_and_the_local_stack_build_the_same_dapr_release() -> None:
    for go_mod in (PROJECT_ROOT / "daprd" / "go.mod", PROJECT_ROOT / "cluster/go/dapr/go.mod"):
        required = re.search(r"^require github\.com/dapr/dapr (\S+)", go_mod.read_text(), re.M)
        assert required is not None, go_mod
        assert required.group(1) == DAPR_VERSION, go_mod


def test_the_chart_names_images_by_registry_component_and_tag() -> None:
    assert dapr.image("sentry") == f"localhost/dapr/sentry:{DAPR_VERSION.lstrip('v')}"
    assert dapr.image("daprd", "docker.io/daprio").startswith("docker.io/daprio/daprd:")


def test_the_image_layer_holds_the_binary_at_the_root_for_a_non_root_user(tmp_path: Path) -> None:
    binary = tmp_path / "sentry"
    binary.write_bytes(b"\x7fELF")
    binary.chmod(0o600)

    with tarfile.open(fileobj=io.BytesIO(dapr.static_image_layer(binary, "sentry"))) as archive:
        members = {member.name: member for member in archive.getmembers()}
        passwd = archive.extractfile("etc/passwd")
        assert passwd is not None
        assert f"nonroot:x:{dapr.NONROOT}:{dapr.NONROOT}:" in passwd.read().decode()

    assert members["sentry"].mode == 0o755
    assert members["sentry"].uid == 0
    assert members["tmp"].mode == 0o1777
