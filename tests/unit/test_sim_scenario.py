"""Scenario JSON validation and the `azwait-sim` command-line shorthands."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from azwait_sim import Scenario
from azwait_sim.fleet import Fleet
from azwait_sim.scenario import apply_flags, parse_identity_flags, parse_states_flag


def test_empty_scenario_has_working_defaults() -> None:
    """{} is a public-cloud uniform scale set of one VM, Creating then Succeeded at 15 s."""
    sc = Scenario.from_dict({})
    assert (sc.cloud, sc.kind, sc.vms, sc.clock) == ("AzurePublicCloud", "uniform", 1, "start")
    assert sc.audience == "https://management.azure.com/"
    assert sc.timeline(0) == (("Creating", 0.0), ("Succeeded", 15.0))
    assert sc.identity.system and not sc.identity.user
    assert sc.throttle.enabled


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"colud": "AzurePublicCloud"}, "colud"),
        ({"cloud": "AzureGermanCloud"}, "cloud"),
        ({"kind": "scaleset"}, "kind"),
        ({"vms": 0}, "vms"),
        ({"vms": True}, "vms"),
        ({"subscription": "not-a-guid"}, "subscription"),
        ({"states": []}, "states"),
        ({"states": [["Creating", 0], ["Done", 5]]}, r"states\[1\]\[0\]"),
        ({"states": [["Creating", 5], ["Succeeded", 1]]}, r"states\[1\]"),
        ({"states": [["Creating"]]}, r"states\[0\]"),
        ({"vm_states": {"3": [["Succeeded", 0]]}}, r"vm_states\.3"),
        ({"flip_spread": [10]}, "flip_spread"),
        ({"flip_spread": [10, 5]}, r"flip_spread\[1\]"),
        ({"clock": "boot"}, "clock"),
        ({"deleted_after": -1}, "deleted_after"),
        ({"identity": "both"}, "identity"),
        ({"identity": [{"clientid": "x"}]}, r"identity\[0\]\.clientid"),
        ({"identity": {"system": True, "users": []}}, r"identity\.users"),
        ({"rbac": {"forbiden": True}}, r"rbac\.forbiden"),
        ({"faults": [{"status": 500}]}, r"faults\[0\]\.endpoint"),
        ({"faults": [{"endpoint": "arm", "stauts": 500}]}, r"faults\[0\]\.stauts"),
        ({"faults": [{"endpoint": "arm", "status": 700}]}, r"faults\[0\]\.status"),
        ({"faults": [{"endpoint": "arm"}]}, r"faults\[0\]"),
        (
            {"faults": [{"endpoint": "arm", "drop": True, "start": 5, "end": 1}]},
            r"faults\[0\]\.end",
        ),
        ({"faults": [{"endpoint": "arm", "body": "xml", "status": 500}]}, r"faults\[0\]\.body"),
        ({"events": [{"at": 0, "type": "Explode"}]}, r"events\[0\]\.type"),
        ({"events": [{"at": 0, "type": "Preempt", "resources": []}]}, r"events\[0\]\.resources"),
        ({"throttle": {"compute_vm": {"burst": 0}}}, r"throttle\.compute_vm\.burst"),
        ({"vms": 2, "scale_sets": 3}, "scale_sets"),
        ({"kind": "vm", "vms": 2, "scale_sets": 2}, "scale_sets"),
    ],
)
def test_bad_scenario_names_the_key(data: dict[str, Any], key: str) -> None:
    """Each invalid value is refused with a one-line message starting with its key."""
    with pytest.raises(ValueError, match=rf"^{key}: ") as caught:
        Scenario.from_dict(data)
    assert "\n" not in str(caught.value)


def test_unknown_key_message_lists_the_known_ones() -> None:
    """A misspelt key is shown with the keys that would have been accepted."""
    with pytest.raises(ValueError, match=r"unknown key .*known keys: .*faults"):
        Scenario.from_dict({"fault": []})


def test_cloud_names_are_case_insensitive() -> None:
    """azEnvironment is compared case-insensitively, so the scenario accepts any case."""
    sc = Scenario.from_dict({"cloud": "azureusgovernmentcloud"})
    assert sc.cloud == "AzureUSGovernmentCloud"
    assert sc.audience == "https://management.usgovcloudapi.net/"


def test_vm_states_override_one_vm() -> None:
    """vm_states replaces the timeline of the VMs it names, the rest keep `states`."""
    sc = Scenario.from_dict({"vms": 4, "vm_states": {"3": [["Creating", 0], ["Failed", 47]]}})
    assert sc.timeline(3) == (("Creating", 0.0), ("Failed", 47.0))
    assert sc.timeline(2) == sc.states


def test_flip_spread_is_seeded_and_inside_the_window() -> None:
    """flip_spread gives each VM a Succeeded time in the window, the same for the same seed."""
    data = {"vms": 50, "flip_spread": [30, 120], "seed": 7}
    first, again = Scenario.from_dict(data), Scenario.from_dict(data)
    flips = [first.timeline(vm)[1][1] for vm in range(50)]
    assert all(30 <= at <= 120 for at in flips)
    assert len(set(flips)) == 50
    assert flips == [again.timeline(vm)[1][1] for vm in range(50)]


def test_deleted_after_scalar_and_per_vm() -> None:
    """deleted_after is one time for all VMs, or a time per named VM."""
    assert Scenario.from_dict({"vms": 2, "deleted_after": 60}).deleted_after == {0: 60, 1: 60}
    assert Scenario.from_dict({"vms": 3, "deleted_after": {"1": 9}}).deleted_after == {1: 9}


def test_rbac_forbidden_forever_or_until() -> None:
    """rbac.forbidden means never allowed; forbidden_until a time."""
    assert math.isinf(Scenario.from_dict({"rbac": {"forbidden": True}}).forbidden_until)
    assert Scenario.from_dict({"rbac": {"forbidden_until": 30}}).forbidden_until == 30


def test_user_identities_get_ids_filled_in() -> None:
    """A user identity given by client id gets an object id and resource id of its own."""
    sc = Scenario.from_dict({"identity": [{"client_id": "c-1"}], "seed": 1})
    (user,) = sc.identity.user
    assert not sc.identity.system
    assert user.client_id == "c-1"
    assert user.object_id and "/userAssignedIdentities/" in user.resource_id


def test_load_reports_bad_json_with_the_file(tmp_path: Path) -> None:
    """Scenario.load names the file when it is not JSON."""
    path = tmp_path / "s.json"
    path.write_text("{nope")
    with pytest.raises(ValueError, match=r"s\.json: not JSON"):
        Scenario.load(path)


def test_load_reads_a_file(tmp_path: Path) -> None:
    """Scenario.load gives the same scenario as from_dict on the file's contents."""
    path = tmp_path / "s.json"
    path.write_text('{"kind": "flex", "vms": 2}')
    assert Scenario.load(path).kind == "flex"


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("uniform", "/virtualMachineScaleSets/vmss-azwait/virtualMachines/1"),
        ("flex", "/providers/Microsoft.Compute/virtualMachines/vmss-azwait_"),
        ("vm", "/providers/Microsoft.Compute/virtualMachines/vm-azwait-1"),
    ],
)
def test_resource_ids_follow_the_kind(kind: str, pattern: str) -> None:
    """Resource ids are shaped as IMDS reports them for each kind of VM."""
    fleet = Fleet(Scenario.from_dict({"kind": kind, "vms": 2}), lambda: 0.0)
    assert pattern in fleet.vms[1].resource_id
    assert fleet.find(fleet.vms[1].resource_id.upper()) is fleet.vms[1]


def test_scale_set_instances_share_one_system_identity() -> None:
    """A scale set's system identity is one principal; single VMs each have their own."""
    shared = Fleet(Scenario.from_dict({"vms": 3}), lambda: 0.0)
    assert len({vm.system for vm in shared}) == 1
    single = Fleet(Scenario.from_dict({"kind": "vm", "vms": 3}), lambda: 0.0)
    assert len({vm.system for vm in single}) == 3


@pytest.mark.parametrize("kind", ["uniform", "flex"])
def test_scale_sets_split_the_fleet_with_an_identity_each(kind: str) -> None:
    """scale_sets=4: VM i is in scale set i % 4, whose instances share its identity."""
    fleet = Fleet(Scenario.from_dict({"kind": kind, "vms": 8, "scale_sets": 4}), lambda: 0.0)
    assert len({vm.system for vm in fleet}) == 4
    for vm in fleet:
        assert vm.system is fleet.vms[vm.index % 4].system
        assert vm.scale_set_id.endswith(f"/virtualMachineScaleSets/vmss-azwait-{vm.index % 4}")
    assert len({vm.resource_id for vm in fleet}) == 8
    assert all(fleet.find(vm.resource_id) is vm for vm in fleet)


def test_states_flag() -> None:
    """--states "Creating@0,Succeeded@15" becomes a timeline."""
    assert parse_states_flag("Creating@0, Succeeded@15.5") == [
        ["Creating", 0.0],
        ["Succeeded", 15.5],
    ]


@pytest.mark.parametrize("text", ["Creating", "Creating@soon", "@5", "Creating@-1"])
def test_bad_states_flag_names_the_flag(text: str) -> None:
    """A malformed --states is refused naming the flag."""
    with pytest.raises(ValueError, match=r"^--states: "):
        parse_states_flag(text)


@pytest.mark.parametrize(
    ("flags", "identity"),
    [
        (["none"], "none"),
        (["system"], {"system": True, "user": []}),
        (["client_id=abc"], {"system": False, "user": [{"client_id": "abc"}]}),
        (
            ["system", "msi_res_id=/x", "object_id=o,client_id=c"],
            {"system": True, "user": [{"resource_id": "/x"}, {"object_id": "o", "client_id": "c"}]},
        ),
    ],
)
def test_identity_flags(flags: list[str], identity: Any) -> None:
    """--identity values build the scenario's identity value."""
    assert parse_identity_flags(flags) == identity


@pytest.mark.parametrize("flags", [["tenant_id=x"], ["none", "system"], ["client_id="]])
def test_bad_identity_flags(flags: list[str]) -> None:
    """Unknown selectors, empty values and none-with-others are refused naming the flag."""
    with pytest.raises(ValueError, match=r"^--identity: "):
        parse_identity_flags(flags)


def test_flags_override_the_scenario_file() -> None:
    """Shorthands replace the scenario's values; keys they do not touch are kept."""
    merged = apply_flags(
        {"vms": 5, "cloud": "AzurePublicCloud", "location": "eastus"},
        states="Succeeded@0",
        cloud="AzureChinaCloud",
        identities=["client_id=c"],
        vms=2,
        clock="first-request",
    )
    sc = Scenario.from_dict(merged)
    assert (sc.vms, sc.cloud, sc.clock, sc.location) == (
        2,
        "AzureChinaCloud",
        "first-request",
        "eastus",
    )
    assert sc.states == (("Succeeded", 0.0),)
    assert [u.client_id for u in sc.identity.user] == ["c"]
