#!/usr/bin/python3
"""Register azwait in cloud-init's final stage without dropping any module.

A list in /etc/cloud/cloud.cfg.d replaces the one in /etc/cloud/cloud.cfg, so a
drop-in that names one module has to restate the whole final-stage list. Which
list depends on the distro variant (Ubuntu's has ubuntu_drivers and ansible,
RHEL's lacks fan and lxd, Debian's ships its own cloud.cfg) and on what the
admin and other packages put in cloud.cfg.d. So the list is never written by
hand: this computes the effective one as cloud-init will (cloud.cfg, then every
cloud.cfg.d/*.cfg, greatest name winning, with cloud-init's own readers and
merger when it is installed), adds azwait after scripts_user, and writes it to
99_zz_azwait_final_modules.cfg, whose name sorts after what installers and
packages ship ("99-installer.cfg", a user's "99-azwait.cfg"), so that its list
is the one that counts. It runs from the package's postinst on install and
whenever dpkg changes cloud.cfg or cloud.cfg.d (a trigger), and never touches
cloud.cfg itself.

Usage: cloud-init-register [--root DIR] [--remove] [--check]
Exit status: 0 done (or nothing to do: no cloud-init); 1 --check found the
effective list without azwait exactly once after scripts_user, or cloud.cfg
could not be read; 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any, Optional

DROP_IN = "99_zz_azwait_final_modules.cfg"
MODULE = "azwait"
AFTER = "scripts_user"  # a worker that runcmd or user scripts install exists by then
HEADER = """\
# Written by azwait's package (cloud-init-register); do not edit: it is rebuilt
# whenever cloud-init or /etc/cloud/cloud.cfg changes, and removed with azwait.
# It restates the final-stage module list that cloud.cfg and the other files in
# cloud.cfg.d give, in their order, with azwait added after scripts_user, since
# a list here replaces the whole list. To change the list, change those files
# and run /usr/lib/azwait/cloud-init-register (or dpkg-reconfigure azwait).
"""


def module_name(entry: Any) -> Optional[str]:
    """A final-stage entry's module, as cloud-init normalises it (form_module_name)."""
    if isinstance(entry, dict):
        entry = entry.get("name")
    elif isinstance(entry, (list, tuple)):
        entry = entry[0] if entry else None
    if not isinstance(entry, str):
        return None
    name = entry.strip().replace("-", "_")
    if name.startswith("cc_"):
        name = name[3:]
    if name.endswith(".py"):
        name = name[:-3]
    return name


class Config:
    """cloud.cfg and cloud.cfg.d under a root, read and merged the way cloud-init does."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.cloud_cfg = os.path.join(root, "etc/cloud/cloud.cfg")
        try:
            from cloudinit import util  # the installed cloud-init's own reader and merger
        except ImportError:
            util = None
        self._util = util

    def read(self, path: str) -> dict[str, Any]:
        if self._util is not None:
            data = self._util.read_conf(path)
        else:
            import yaml

            try:
                with open(path, encoding="utf-8") as handle:
                    data = yaml.safe_load(handle)
            except (OSError, yaml.YAMLError):
                data = None
        return data if isinstance(data, dict) else {}

    def _merge(self, configs: list[dict[str, Any]]) -> dict[str, Any]:
        """Earlier configs win; lists are taken whole (cloud-init's default merger)."""
        if self._util is not None:
            merged: dict[str, Any] = self._util.mergemanydict(configs)
            return merged
        merged = {}
        for config in reversed(configs):
            merged.update(config)
        return merged

    def conf_d(self, base: dict[str, Any]) -> str:
        confd = base.get("conf_d")
        if isinstance(confd, str) and confd:
            return os.path.join(self.root, confd.lstrip("/"))
        return os.path.join(self.root, "etc/cloud/cloud.cfg.d")

    def final_modules(self, exclude: Optional[str] = None) -> Optional[list[Any]]:
        """The effective cloud_final_modules, leaving out the file named ``exclude``."""
        base = self.read(self.cloud_cfg)
        confd = self.conf_d(base)
        try:
            names = sorted(os.listdir(confd), reverse=True)  # greatest name first: it wins
        except OSError:
            names = []
        configs = [self.read(os.path.join(confd, name)) for name in names
                   if name.endswith(".cfg") and name != exclude
                   and os.path.isfile(os.path.join(confd, name))]
        modules = self._merge([*configs, base]).get("cloud_final_modules")
        return list(modules) if isinstance(modules, list) else None


def with_azwait(modules: list[Any]) -> list[Any]:
    """The list with azwait once, right after the last scripts_user (or at the end)."""
    kept = [entry for entry in modules if module_name(entry) != MODULE]
    after = [i for i, entry in enumerate(kept) if module_name(entry) == AFTER]
    at = after[-1] + 1 if after else len(kept)
    return [*kept[:at], MODULE, *kept[at:]]


def render(modules: list[Any]) -> str:
    # JSON is YAML: each entry, string or [name, frequency], written exactly.
    lines = [f"  - {json.dumps(entry)}" for entry in modules]
    return HEADER + "cloud_final_modules:\n" + "\n".join(lines) + "\n"


def write(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".azwait.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def registered(modules: Optional[list[Any]]) -> bool:
    names = [module_name(entry) for entry in modules or []]
    if names.count(MODULE) != 1:
        return False
    at = names.index(MODULE)
    return AFTER not in names or (at > 0 and AFTER in names[:at] and AFTER not in names[at:])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="cloud-init-register", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/", help="the system's root (for image builds, tests)")
    parser.add_argument("--remove", action="store_true", help="remove the drop-in")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless the effective list has azwait once after scripts_user")
    args = parser.parse_args(argv)
    config = Config(args.root)
    installed = os.path.isfile(config.cloud_cfg)
    if args.check:
        return 0 if installed and registered(config.final_modules()) else 1
    if args.remove or not installed:
        # No cloud-init (or removed): a drop-in naming cc_azwait would only confuse it.
        drop_in = os.path.join(config.conf_d({}), DROP_IN)
        if os.path.exists(drop_in):
            os.unlink(drop_in)
        return 0
    try:
        drop_in = os.path.join(config.conf_d(config.read(config.cloud_cfg)), DROP_IN)
    except ImportError:
        print("cloud-init-register: neither cloudinit nor PyYAML can be imported: cannot "
              "read /etc/cloud/cloud.cfg", file=sys.stderr)
        return 1
    theirs = config.final_modules(exclude=DROP_IN)
    if theirs is None:
        print("cloud-init-register: no cloud_final_modules in cloud.cfg or cloud.cfg.d: "
              "azwait not registered", file=sys.stderr)
        return 0
    write(drop_in, render(with_azwait(theirs)))
    if not registered(config.final_modules()):
        # Another file merges into the list (merge_how) or overrides it after ours.
        print(f"cloud-init-register: warning: {drop_in} written, but the effective "
              "cloud_final_modules does not end up with azwait once after scripts_user; "
              "check the other files in cloud.cfg.d", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
