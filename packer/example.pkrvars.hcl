# Example values for an azwait image build: copy, edit, and pass with
#   packer build -var-file=my.pkrvars.hcl packer/
# Keep credentials out of this file: use `az login` (use_azure_cli_auth) or
# PKR_VAR_client_id / PKR_VAR_client_secret / PKR_VAR_subscription_id /
# PKR_VAR_tenant_id in the environment.
use_azure_cli_auth = true

deb_path       = "build/azwait_0.2.0_all.deb"
ubuntu_version = "24.04"
# Or Azure's Ubuntu HPC image (InfiniBand, MPI, NVIDIA driver and CUDA preinstalled):
# image_publisher = "microsoft-dsvm"
# image_offer     = "ubuntu-hpc"
# image_sku       = "2404"
location = "westeurope"
vm_size  = "Standard_D2s_v5"

# A managed image ...
managed_image_name                = "azwait-ubuntu-2404"
managed_image_resource_group_name = "rg-images"

# ... and/or a gallery image version (the image definition must exist:
# Linux, generalized, Hyper-V generation V2, x64).
gallery_name                = "galimages"
gallery_resource_group      = "rg-images"
gallery_image_name          = "azwait-ubuntu"
gallery_image_version       = "0.2.0"
gallery_replication_regions = ["westeurope", "northeurope"]

tags = {
  team = "hpc"
}
