"""azwait: hold a worker back until Azure Resource Manager says the VM is Succeeded."""

__version__ = "0.2.0"
