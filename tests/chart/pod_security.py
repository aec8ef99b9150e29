"""The Pod Security Standards' `restricted` profile (as of Kubernetes 1.33), checked on a pod
spec the way the Pod Security admission checks it: each rule of the baseline and restricted
levels that a pod spec can break."""

from typing import Any

# Volume types the restricted level allows.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {
    None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t",
}  # fmt: skip


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What keeps `pod` (a PodSpec) from the restricted level; empty when it passes."""
    problems = [f"{key} is set" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    pod_context = pod.get("securityContext", {})
    for sysctl in pod_context.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl['name']}")
    containers = [
        *pod.get("initContainers", []), *pod["containers"], *pod.get("ephemeralContainers", []),
    ]  # fmt: skip
    for container in containers:
        problems += [f"{container['name']}: {p}" for p in _container_violations(container, pod)]
    return problems


def _container_violations(container: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    pod_context = pod.get("securityContext", {})
    context = container.get("securityContext", {})

    def effective(key: str) -> Any:
        return context.get(key, pod_context.get(key))

    problems = []
    if context.get("privileged"):
        problems.append("privileged")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    capabilities = context.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        problems.append("capabilities do not drop ALL")
    if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
        problems.append(f"capabilities add {capabilities['add']}")
    if effective("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if effective("runAsUser") == 0:
        problems.append("runAsUser is 0")
    if (effective("seccompProfile") or {}).get("type") not in {"RuntimeDefault", "Localhost"}:
        problems.append("no RuntimeDefault or Localhost seccomp profile")
    if (effective("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append("AppArmor unconfined")
    if (effective("seLinuxOptions") or {}).get("type") not in SELINUX_TYPES:
        problems.append("SELinux type")
    if context.get("procMount", "Default") != "Default":
        problems.append("procMount")
    if any(port.get("hostPort") for port in container.get("ports", [])):
        problems.append("hostPort")
    return problems
