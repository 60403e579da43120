"""``nasframe list``: the installed plugins and the components each adds.

    nasframe list            # one block per plugin: name, package and version, then kind: class path
    nasframe list --json     # the same as JSON on stdout, for scripts
    nasframe list --strict   # exit status 1 when a plugin fails to import or to declare its components
"""

from __future__ import annotations

import argparse
import json
import sys

from nasframe.plugins import PluginComponents, dotted_path, installed_components


def main(argv: list[str]) -> int:
    """Print the listing; the exit status is 0, or 1 with ``--strict`` when a plugin has an error."""
    parser = argparse.ArgumentParser(prog="nasframe list", description="List the installed nasframe plugins and the "
                                     "components (spaces, strategies, evaluators, ...) each one adds.")
    parser.add_argument("--json", action="store_true", help="print JSON to stdout instead of text")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a plugin fails to import")
    args = parser.parse_args(argv)
    listing = installed_components()
    if args.json:
        json.dump({"plugins": [plugin.to_dict() for plugin in listing]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_listing(listing))
    return 1 if args.strict and any(plugin.error for plugin in listing) else 0


def format_listing(listing: list[PluginComponents]) -> str:
    """Human-readable text: a header line per plugin, then one ``kind  class path`` line per
    component, or its error on one line."""
    lines = []
    for plugin in listing:
        origin = f"package {plugin.package or '(unknown)'} {plugin.version or ''}".rstrip()
        lines.append(f"{plugin.name} ({'built in, ' if plugin.builtin else ''}{origin})")
        if plugin.error:
            lines.append(f"  error: {' '.join(plugin.error.split())}")
        elif not plugin.components:
            lines.append("  (declares no components: it implements no nasframe_components hook)")
        width = max((len(kind) for kind in plugin.components), default=0)
        for kind, items in plugin.components.items():
            lines += [f"  {kind:<{width}}  {dotted_path(item)}" for item in items]
    return "\n".join(lines) + "\n"
