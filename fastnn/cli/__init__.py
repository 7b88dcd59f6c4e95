"""The ``fastnn`` command line: one module per subcommand.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
fastnn/__main__.py lists them in ``COMMANDS``.
"""
