# The build VM: a marketplace image (Canonical's Ubuntu LTS by default), captured as a
# managed image and/or a gallery image version after the build steps.
#
# Only arguments known both to the current azure plugin (>= 2.0.0) and to the
# azure-arm builder inside Packer 1.6.6 are used here, so that
# tests/packer/check.sh can validate this file offline with Debian's packer.
source "azure-arm" "azwait" {
  # Authentication (all empty by default; see variables.pkr.hcl).
  use_azure_cli_auth = var.use_azure_cli_auth
  client_id          = var.client_id
  client_secret      = var.client_secret
  subscription_id    = var.subscription_id
  tenant_id          = var.tenant_id

  # Base image: Canonical's Ubuntu LTS, or the marketplace image named by image_*.
  os_type         = "Linux"
  image_publisher = local.base_image.publisher
  image_offer     = local.base_image.offer
  image_sku       = local.base_image.sku
  image_version   = var.image_version

  # Build VM: a temporary resource group in `location`, or an existing one.
  location                  = var.build_resource_group_name == "" ? var.location : null
  build_resource_group_name = var.build_resource_group_name == "" ? null : var.build_resource_group_name
  vm_size                   = var.vm_size
  azure_tags                = local.azure_tags

  # Output 1: a managed image (when managed_image_name is set).
  managed_image_name                = var.managed_image_name == "" ? null : var.managed_image_name
  managed_image_resource_group_name = var.managed_image_name == "" ? null : var.managed_image_resource_group_name

  # Output 2: an Azure Compute Gallery image version (when gallery_name is set).
  # `replication_regions` rather than the newer `target_region` blocks, and
  # no `storage_account_type` (replicas are Standard_LRS): Packer 1.6.6's
  # builder knows neither.
  dynamic "shared_image_gallery_destination" {
    for_each = var.gallery_name == "" ? [] : [var.gallery_name]
    content {
      subscription        = var.gallery_subscription_id
      resource_group      = var.gallery_resource_group
      gallery_name        = shared_image_gallery_destination.value
      image_name          = var.gallery_image_name
      image_version       = var.gallery_image_version
      replication_regions = var.gallery_replication_regions
    }
  }
}
