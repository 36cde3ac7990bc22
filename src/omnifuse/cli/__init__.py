"""The command line; see `omnifuse --help`."""
