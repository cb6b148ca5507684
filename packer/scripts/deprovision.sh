#!/bin/sh
# Last step of the image build: forget this VM, then generalize it.
#
# `azwait clean` removes azwait's per-VM state (markers for this vmId and
# boot) so that VMs made from the image start from nothing. The Azure agent's
# deprovision then removes the SSH host keys, the provisioning user (the one
# Packer is logged in as) and other per-VM data. Nothing may run after it.
# Runs as root through sudo -E.
set -eu

printf 'deprovision: %s\n' "forgetting azwait per-VM state"
azwait clean

printf 'deprovision: %s\n' "generalizing with waagent"
/usr/sbin/waagent -force -deprovision+user && export HISTSIZE=0 && sync
