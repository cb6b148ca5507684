"""azwait: hold a worker back until Azure Resource Manager says the VM is Succeeded."""

__version__ = "0.1.0"
