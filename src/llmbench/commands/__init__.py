"""The ``llmbench`` subcommands, one module each (``llmbench.cli`` dispatches to them).

The module ``llmbench.commands.<name>`` holds ``add_<name>_arguments(parser)`` and
``<name>_main(args) -> int``: the options, what is printed and the exit status; the work is done in the
library packages it calls (gate/, ab/, history/, report/, shards/, selfcheck/). The argparse pieces
several subcommands share are :mod:`llmbench.commands.arguments`. Nothing below this package imports it.
"""
