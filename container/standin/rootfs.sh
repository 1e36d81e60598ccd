#!/bin/sh
# The stand-in base's root filesystem, from Debian's packages, as a tar on stdout
# (container/standin.py imports it). What it mirrors of rayproject/ray's base-deps image, and
# how it differs: docs/standin-base.md. Needs root and mmdebstrap.
# Debian's /etc/profile resets PATH for login shells, and KubeRay starts Ray with `bash -lc`:
# profile.d puts the Python environment first again, as Ubuntu's (upstream's) keeps it.
set -eu
exec mmdebstrap --variant=minbase --format=tar \
  --include=python3,python3-venv,sudo,ca-certificates,wget,procps,tzdata \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook='chroot "$1" useradd -ms /bin/bash -d /home/ray ray --uid 1000 --gid 100' \
  --customize-hook='chroot "$1" usermod -aG sudo ray' \
  --customize-hook='echo "ray ALL=NOPASSWD: ALL" >> "$1/etc/sudoers"' \
  --customize-hook='echo "PATH=/home/ray/anaconda3/bin:\$PATH" > "$1/etc/profile.d/ray-python.sh"' \
  bookworm - \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
