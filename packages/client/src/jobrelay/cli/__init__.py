"""The `jobrelay` command line: submit, follow and batch jobs (`jobrelay --help`)."""
