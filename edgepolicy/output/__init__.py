"""Report formats for `edgepolicy check`."""
