"""Report writers: each turns the report dict (see keystone_checks/report.py) into one format."""
