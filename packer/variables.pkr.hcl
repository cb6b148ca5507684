# Inputs of the azwait image build. Every value can also be given as
# PKR_VAR_<name> in the environment or in a -var-file; secrets belong there,
# never in this directory.

// ---------------------------------------------------------------------------
// Authentication. Either use_azure_cli_auth = true (a prior `az login`), or a
// service principal (client_id + client_secret + subscription_id + tenant_id).
// With neither, the builder falls back to the managed identity of the machine
// Packer runs on.
variable "use_azure_cli_auth" {
  type        = bool
  default     = false
  description = "Authenticate with the Azure CLI's current login (az login)."
}

variable "client_id" {
  type        = string
  default     = ""
  sensitive   = true
  description = "Service principal application (client) id."
}

variable "client_secret" {
  type        = string
  default     = ""
  sensitive   = true
  description = "Service principal secret."
}

variable "subscription_id" {
  type        = string
  default     = ""
  sensitive   = true
  description = "Subscription that holds the build VM and the image."
}

variable "tenant_id" {
  type        = string
  default     = ""
  sensitive   = true
  description = "Entra ID tenant of the service principal."
}

// ---------------------------------------------------------------------------
// Build VM.
variable "location" {
  type        = string
  default     = ""
  description = "Azure region of the build VM and its temporary resource group. Leave empty when build_resource_group_name is set."
}

variable "build_resource_group_name" {
  type        = string
  default     = ""
  description = "Existing resource group to build in instead of a temporary one (location is then ignored)."
}

variable "vm_size" {
  type        = string
  default     = "Standard_D2s_v5"
  description = "Size of the build VM (must support Hyper-V generation 2)."
}

// The base image. By default Canonical's Ubuntu LTS of ubuntu_version. Any other
// marketplace image by publisher, offer and sku (all three, or none), for example
// Azure's Ubuntu HPC images: microsoft-dsvm / ubuntu-hpc / 2204 or 2404 (see the
// README, "Images").
variable "ubuntu_version" {
  type        = string
  default     = "24.04"
  description = "Ubuntu LTS release of the default base image: 22.04 or 24.04 (ignored when image_publisher is set)."

  validation {
    condition     = var.ubuntu_version == "22.04" || var.ubuntu_version == "24.04"
    error_message = "The ubuntu_version must be \"22.04\" or \"24.04\"."
  }
}

variable "image_publisher" {
  type        = string
  default     = ""
  description = "Marketplace publisher of the base image, e.g. microsoft-dsvm; empty: Canonical's Ubuntu LTS of ubuntu_version."
}

variable "image_offer" {
  type        = string
  default     = ""
  description = "Marketplace offer of the base image, e.g. ubuntu-hpc (with image_publisher)."
}

variable "image_sku" {
  type        = string
  default     = ""
  description = "Marketplace SKU of the base image, e.g. 2404 (with image_publisher)."
}

variable "image_version" {
  type        = string
  default     = "latest"
  description = "Version of the base image: latest, or a pinned one such as 24.04.2026052601."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Extra Azure tags for the build resources and the managed image."
}

// ---------------------------------------------------------------------------
// What goes into the image.
variable "deb_path" {
  type        = string
  description = "Path to the built package, build/azwait_<version>_<arch>.deb (make deb)."

  // Packer 1.6.6 offers no regex functions inside a validation block.
  validation {
    condition     = substr(basename(var.deb_path), 0, 7) == "azwait_" && substr(var.deb_path, -4, -1) == ".deb"
    error_message = "The deb_path must name an azwait_<version>_<arch>.deb file."
  }
}

variable "enable_events_service" {
  type        = bool
  default     = false
  description = "Also enable azwait-events.service (Scheduled Events drain); needs AZWAIT_DRAIN_COMMAND in /etc/default/azwait at deploy time."
}

// ---------------------------------------------------------------------------
// Where the image goes: a managed image, an Azure Compute Gallery image
// version, or both. Set managed_image_name, gallery_name, or both.
variable "managed_image_name" {
  type        = string
  default     = ""
  description = "Name of the managed image to create (must not exist yet). Empty: no managed image."
}

variable "managed_image_resource_group_name" {
  type        = string
  default     = ""
  description = "Existing resource group for the managed image."
}

variable "gallery_name" {
  type        = string
  default     = ""
  description = "Azure Compute Gallery to publish an image version to. Empty: no gallery publishing."
}

variable "gallery_resource_group" {
  type        = string
  default     = ""
  description = "Resource group of the gallery."
}

variable "gallery_subscription_id" {
  type        = string
  default     = ""
  description = "Subscription of the gallery; empty: the build subscription."
}

variable "gallery_image_name" {
  type        = string
  default     = "azwait-ubuntu"
  description = "Existing image definition in the gallery (Linux, generalized, Hyper-V generation V2, x64)."
}

variable "gallery_image_version" {
  type        = string
  default     = ""
  description = "Image version to create, MAJOR.MINOR.PATCH (e.g. 1.0.0)."
}

variable "gallery_replication_regions" {
  type        = list(string)
  default     = []
  description = "Regions to replicate the image version to; the build region is always included."
}

// ---------------------------------------------------------------------------
// Derived values.
locals {
  # Canonical's marketplace images; both SKUs are Hyper-V generation 2, x64.
  ubuntu_images = {
    "22.04" = { offer = "0001-com-ubuntu-server-jammy", sku = "22_04-lts-gen2" }
    "24.04" = { offer = "ubuntu-24_04-lts", sku = "server" }
  }
  # The base image: Canonical's by default, else exactly the one named by image_*
  # (a part left empty is refused by the builder, never filled from Canonical's).
  custom_image = var.image_publisher != "" || var.image_offer != "" || var.image_sku != ""
  base_image = local.custom_image ? {
    publisher = var.image_publisher
    offer     = var.image_offer
    sku       = var.image_sku
    } : {
    publisher = "Canonical"
    offer     = local.ubuntu_images[var.ubuntu_version].offer
    sku       = local.ubuntu_images[var.ubuntu_version].sku
  }

  # Where the file provisioner puts the package on the build VM.
  remote_deb = "/tmp/${basename(var.deb_path)}"

  # Provisioner scripts run as root with the variables Packer hands them;
  # the same form as actions/runner-images.
  execute_command = "chmod +x {{ .Path }}; {{ .Vars }} sudo -E sh '{{ .Path }}'"

  azure_tags = merge({
    "image"      = "azwait"
    "base-image" = "${local.base_image.publisher}:${local.base_image.offer}:${local.base_image.sku}:${var.image_version}"
  }, var.tags)
}
