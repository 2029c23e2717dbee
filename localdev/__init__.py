"""Local development tools: an offline emulation of Connect for the real extension runner.

Not shipped with the extension (only `connect_mongodb_example` is packaged).
"""
