# Build steps, in order: upload the package, install it and enable its units,
# then forget per-VM state and generalize the VM. Deprovisioning deletes the
# SSH user Packer is logged in as, so it is the last step; nothing may follow.
build {
  sources = ["source.azure-arm.azwait"]

  provisioner "file" {
    source      = var.deb_path
    destination = local.remote_deb
  }

  provisioner "shell" {
    execute_command = local.execute_command
    # Names outside AZWAIT_*: azwait rejects unknown AZWAIT_* keys in its
    # environment, and sudo -E hands this environment to it.
    environment_vars = [
      "DEB_PATH=${local.remote_deb}",
      "ENABLE_EVENTS=${var.enable_events_service}",
    ]
    script = "${path.root}/scripts/install-azwait.sh"
  }

  provisioner "shell" {
    execute_command = local.execute_command
    script          = "${path.root}/scripts/deprovision.sh"
  }
}
