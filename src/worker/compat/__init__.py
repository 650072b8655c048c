"""Where the worker relies on a library's internals, one module per library, each pinned by a
contract test, so that an upgrade which moves them fails loudly in one place."""
