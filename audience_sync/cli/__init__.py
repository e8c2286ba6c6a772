"""The ``audience-sync`` command: ``main`` wires the parser, a module per command."""
