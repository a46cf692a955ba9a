"""Sub-commands of the `vitscope` CLI: one module each, each with `register(subparsers)`."""
