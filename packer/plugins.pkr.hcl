# Plugin requirements, kept in a file of their own on purpose.
#
# A current Packer (>= 1.7) reads this block for `packer init`, which installs
# the azure plugin before `packer build`. Packer 1.6.6 (the one Debian 12
# ships, used by tests/packer/check.sh) predates `required_plugins` and rejects
# the block, so the check validates a copy of this directory without this
# file, against the azure-arm builder built into 1.6.6.
packer {
  required_plugins {
    azure = {
      source  = "github.com/hashicorp/azure"
      version = ">= 2.0.0"
    }
  }
}
