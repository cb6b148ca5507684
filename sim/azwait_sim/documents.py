"""The JSON documents the simulator serves, shaped like the real ones.

Kept apart from the request handling so that what a field looks like and when a
request is refused can each be read on their own.
"""

from __future__ import annotations

from typing import Any

from azwait_sim.fleet import VM
from azwait_sim.scenario import Scenario

# Versions Microsoft.Compute answers for virtualMachines and scale-set VMs.
COMPUTE_VERSIONS = (
    "2015-06-15",
    "2016-03-30",
    "2016-04-30-preview",
    "2017-03-30",
    "2017-12-01",
    "2018-04-01",
    "2018-06-01",
    "2018-10-01",
    "2019-03-01",
    "2019-07-01",
    "2019-12-01",
    "2020-06-01",
    "2020-12-01",
    "2021-03-01",
    "2021-04-01",
    "2021-07-01",
    "2021-11-01",
    "2022-03-01",
    "2022-08-01",
    "2022-11-01",
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-02-01",
    "2025-04-01",
)


def compute_document(sc: Scenario, vm: VM, scale_set_id: str) -> dict[str, Any]:
    """IMDS ``compute``: every value a string (or list/object), "" when not set."""
    uniform = sc.kind == "uniform"
    return {
        "azEnvironment": sc.cloud,
        "additionalCapabilities": {"hibernationEnabled": "false"},
        "customData": "",
        "evictionPolicy": "",
        "extendedLocation": {"name": "", "type": ""},
        "host": {"id": ""},
        "hostGroup": {"id": ""},
        "isHostCompatibilityLayerVm": "false",
        "licenseType": "",
        "location": sc.location,
        "name": vm.name,
        "offer": "debian-12",
        "osProfile": {
            "adminUsername": "azureuser",
            "computerName": vm.computer_name,
            "disablePasswordAuthentication": "true",
        },
        "osType": "Linux",
        "placementGroupId": "",
        "plan": {"name": "", "product": "", "publisher": ""},
        "platformFaultDomain": str(vm.index % 5) if sc.kind != "vm" else "0",
        "platformSubFaultDomain": "",
        "platformUpdateDomain": str(vm.index % 5) if uniform else "0",
        "priority": "",
        "provider": "Microsoft.Compute",
        "publicKeys": [],
        "publisher": "Debian",
        "resourceGroupName": sc.resource_group,
        "resourceId": vm.resource_id,
        "securityProfile": {
            "encryptionAtHost": "false",
            "secureBootEnabled": "false",
            "securityType": "",
            "virtualTpmEnabled": "false",
        },
        "sku": "12-gen2",
        "subscriptionId": sc.subscription,
        "tags": "",
        "tagsList": [],
        "userData": "",
        "version": "0.20250101.1970",
        # Only Flexible members report their scale set here (azure-facts.md).
        "virtualMachineScaleSet": {"id": scale_set_id if sc.kind == "flex" else ""},
        "vmId": vm.vm_id,
        "vmScaleSetName": "" if sc.kind == "vm" else sc.name,
        "vmSize": sc.vm_size,
        "zone": "",
    }


def instance_document(sc: Scenario, vm: VM, scale_set_id: str) -> dict[str, Any]:
    host = 4 + vm.index
    address = f"10.{(host >> 16) & 255}.{(host >> 8) & 255}.{host & 255}"
    return {
        "compute": compute_document(sc, vm, scale_set_id),
        "network": {
            "interface": [
                {
                    "ipv4": {
                        "ipAddress": [{"privateIpAddress": address, "publicIpAddress": ""}],
                        "subnet": [{"address": "10.0.0.0", "prefix": "8"}],
                    },
                    "ipv6": {"ipAddress": []},
                    "macAddress": f"6045BD{vm.index & 0xFFFFFF:06X}",
                }
            ]
        },
    }


def vm_resource(sc: Scenario, vm: VM, state: str, scale_set_id: str) -> dict[str, Any]:
    """ARM ``GET <resourceId>`` for a scale-set instance or a VM."""
    properties: dict[str, Any] = {
        "vmId": vm.vm_id,
        "hardwareProfile": {"vmSize": sc.vm_size},
        "osProfile": {"computerName": vm.computer_name, "adminUsername": "azureuser"},
        "provisioningState": state,
    }
    resource: dict[str, Any] = {
        "name": vm.name,
        "id": vm.resource_id,
        "type": "Microsoft.Compute/virtualMachines",
        "location": sc.location,
    }
    if sc.kind == "uniform":
        resource["type"] = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
        resource["instanceId"] = str(vm.index)
        resource["sku"] = {"name": sc.vm_size, "tier": "Standard"}
        properties["latestModelApplied"] = True
        properties["modelDefinitionApplied"] = "VirtualMachineScaleSet"
    elif sc.kind == "flex":
        properties["virtualMachineScaleSet"] = {"id": scale_set_id}
    resource["properties"] = properties
    return resource


def provider_document(sc: Scenario) -> dict[str, Any]:
    versions = list(reversed(COMPUTE_VERSIONS))
    types = (
        "virtualMachines",
        "virtualMachineScaleSets",
        "virtualMachineScaleSets/virtualMachines",
        "locations",
        "operations",
    )
    return {
        "id": f"/subscriptions/{sc.subscription}/providers/Microsoft.Compute",
        "namespace": "Microsoft.Compute",
        "registrationState": "Registered",
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [
            {"resourceType": name, "locations": [sc.location], "apiVersions": versions}
            for name in types
        ],
    }
