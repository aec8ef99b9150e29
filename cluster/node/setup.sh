#!/bin/bash
# Prepares a node image's root filesystem, run inside the build container after kind's node
# files and our binaries are copied in: systemd as the container's init, with only the units a
# node needs, and the CNI plugins where containerd looks for them.
set -euo pipefail

# systemd in a container: no udev, no getty, no tmpfiles clean-up of what kind mounts.
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
  /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
  /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >>/etc/systemd/journald.conf
ln -sf /usr/lib/systemd/systemd /sbin/init
systemctl enable kubelet.service containerd.service undo-mount-hacks.service
systemctl mask systemd-binfmt.service
mkdir -p /etc/kubernetes/manifests

# Debian installs the CNI plugins under /usr/lib/cni; containerd and the kubelet expect /opt.
mkdir -p /opt/cni/bin
ln -sf /usr/lib/cni/* /opt/cni/bin/
